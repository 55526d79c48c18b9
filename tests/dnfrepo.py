"""dnf reading one repository only, into an installroot: what a fleet machine does, with no
host repository, plugin, cache or configuration taking part."""

from __future__ import annotations

import subprocess
from pathlib import Path

from signkeys import stop_agent


def dnf(root: Path, repo: Path, *args: str, key: Path | None = None) -> subprocess.CompletedProcess[str]:
    """dnf with only `repo` (gpgcheck and repo_gpgcheck on), into an installroot; no host repo,
    plugin, cache or config takes part."""
    conf = root.parent / f"{root.name}.conf"
    repos = root.parent / f"{root.name}.repos.d"
    repos.mkdir(exist_ok=True)
    (repos / "respin.repo").write_text(
        f"[respin]\nname=respin\nbaseurl=file://{repo}\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=1\n"
        f"gpgkey=file://{key or repo / 'RPM-GPG-KEY-respin'}\n")
    conf.write_text(f"[main]\ngpgcheck=1\nreposdir={repos}\ncachedir={root.parent / 'dnf-cache'}\n"
                    "install_weak_deps=0\nkeepcache=0\n")
    proc = subprocess.run(["dnf", "-y", "--noplugins", "--config", str(conf), "--installroot", str(root),
                           "--releasever", "37", f"--setopt=reposdir={repos}", "--disablerepo=*",
                           "--enablerepo=respin", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300)
    # dnf checks repo_gpgcheck with a keyring of its own in its cache, through a gpg-agent it leaves.
    for keyring in root.rglob("pubring"):
        if keyring.is_dir():
            stop_agent(keyring)
    return proc
