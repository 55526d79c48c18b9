"""The real-kernel build the tests here share: what it requests, how it runs, what it gives.

conftest.py runs it once per session (the `real_build` fixture); tests import
the names below from here (a conftest is no module to import from).
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from respin_cli import respin
from signkeys import gpg_home, x509_pair

from fixtures.realkernel import TARBALL
from respin.stages.kernel.lib.rpmpkg import payload_files, read_package

# The change the build carries: a string, an int and a bool, each visible in the
# running kernel (its hostname, /proc/config.gz, timestamps on kernel messages) and
# none opening a symbol the configs leave without a value.
REQUEST = {"CONFIG_DEFAULT_HOSTNAME": "respin", "CONFIG_LOG_BUF_SHIFT": "16", "CONFIG_PRINTK_TIME": "y"}
REQUESTED_LINES = ('CONFIG_DEFAULT_HOSTNAME="respin"', "CONFIG_LOG_BUF_SHIFT=16", "CONFIG_PRINTK_TIME=y")
BUILDID = ".respin"
# A cold build is minutes of CPU on two cores; under load it has taken longer.
BUILD_TIMEOUT = 3600.0

_TOOLS = ("rpmbuild", "make", "gcc", "flex", "bison", "bc", "perl", "git", "xz", "openssl", "sbsign",
          "unshare")


def missing_build_tools() -> list[str]:
    """What the real-kernel build needs and this machine lacks."""
    missing = [] if TARBALL.is_file() else [f"{TARBALL} (linux-source-6.1)"]
    return missing + [tool for tool in _TOOLS if shutil.which(tool) is None]


@dataclass(frozen=True)
class RealBuild:
    """The session's respin build of the real kernel."""

    srpm: Path  # the fixture's source package
    workdir: Path
    manifest: dict[str, Any]
    rpm: Path  # the kernel binary package
    kverrel: str  # the uname -r the package names: <version>-<release>.<arch>
    wall: float  # seconds of the `respin run`
    cpu: float  # user + system seconds of it and its children
    keys: Keys | None  # what it signed with
    stderr: str  # what respin said

    def payload(self, pattern: str) -> bytes:
        """The one file of the package's payload whose name matches `pattern`."""
        found = dict(payload_files(self.rpm, re.compile(pattern)))
        assert len(found) == 1, (pattern, sorted(found))
        return next(iter(found.values()))

    def module_dir_file(self, name: str) -> bytes:
        """/lib/modules/<kverrel>/`name` from the package: where Fedora's kernel-core carries the
        image, config and System.map (its /boot copies are %ghost, without content)."""
        return self.payload(rf"^/lib/modules/{re.escape(self.kverrel)}/{re.escape(name)}$")

    def kernel_image(self, where: Path) -> Path:
        """The package's kernel image (/lib/modules/<kverrel>/vmlinuz), into `where`."""
        image = where / f"vmlinuz-{self.kverrel}"
        image.write_bytes(self.module_dir_file("vmlinuz"))
        return image

    def config(self) -> str:
        """The package's config (/lib/modules/<kverrel>/config)."""
        return self.module_dir_file("config").decode()


@dataclass(frozen=True)
class Keys:
    """The session's signing keys: the module key (key and certificate in one PEM) and the
    Secure Boot pair."""

    module: Path
    secureboot_key: Path
    secureboot_cert: Path
    gpg_home: Path
    gpg_fingerprint: str

    @staticmethod
    def make(where: Path) -> Keys:
        module, _ = x509_pair(where, "module", combined=True)
        sb_key, sb_cert = x509_pair(where, "secureboot")
        home, fingerprint = gpg_home(where, "release")
        return Keys(module, sb_key, sb_cert, home, fingerprint)

    def sign_table(self) -> str:
        return (f'[sign]\nmodule_key = "{self.module}"\nsecureboot_key = "{self.secureboot_key}"\n'
                f'secureboot_cert = "{self.secureboot_cert}"\ngpg_key = "{self.gpg_fingerprint}"\n'
                f'gpg_home = "{self.gpg_home}"\n\n')


def pipeline_text(srpm: Path, ccache_dir: Path, keys: Keys | None) -> str:
    """The pipeline file: the request, the buildid, a binary --with baseonly build; signed with
    `keys` when given (modules, the Secure Boot image, the package) and published, with the
    package's signature, into "repo" beside the work dir."""
    values = ", ".join(f"{key} = {json.dumps(value)}" for key, value in REQUEST.items())
    stages = ["fetch", *(["sign"] if keys else []), "prep", "config", "diff", "inject", "rebuild", "verify",
              *(["publish"] if keys else [])]
    return (f'[pipeline]\ntarget = "x86_64"\nworkdir = "work"\nstages = {json.dumps(stages)}\n\n'
            f'[fetch]\nsrpm = "{srpm}"\n\n'
            + (keys.sign_table() if keys else "") +
            f"[config]\nset = {{ {values} }}\n\n"
            f'[inject]\nbuildid = "{BUILDID}"\n\n'
            f'[rebuild]\nwith = ["baseonly"]\nmode = "binary"\nccache_dir = "{ccache_dir}"\n'
            + ('\n[publish]\nrepo = "repo"\n' if keys else ""))


def run_real_build(srpm: Path, where: Path, ccache_dir: Path, keys: Keys | None) -> RealBuild:
    """`respin run` of the whole kernel pipeline on `srpm` in `where`; what it built."""
    (where / "kernel.toml").write_text(pipeline_text(srpm, ccache_dir, keys))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = respin("run", "kernel.toml", "--json", cwd=where, timeout=BUILD_TIMEOUT)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # Beside the work dir: what this session's build cost (the cache may have been warm).
    (where / "timing.txt").write_text(f"wall {wall:.0f} s, cpu {cpu:.0f} s\n{proc.stderr}")
    manifest = json.loads(proc.stdout)
    rpms = [Path(a["path"]) for a in manifest["artifacts"] if a["kind"] == "rpm"]
    assert len(rpms) == 1, rpms
    pkg = read_package(rpms[0])
    return RealBuild(srpm=srpm, workdir=where / "work", manifest=manifest, rpm=rpms[0],
                     kverrel=f"{pkg.version}-{pkg.release}.{pkg.arch}", wall=wall, cpu=cpu, keys=keys,
                     stderr=proc.stderr)
