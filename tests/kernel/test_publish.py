"""publish against a second local user: the repository directory is theirs to write, the run's
mode and time changes must only ever reach the packages respin put there."""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from respin_cli import respin

from respin.stages.kernel.lib import yumrepo

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("rpmbuild") is None or shutil.which("createrepo_c") is None,
                                 reason="rpmbuild and createrepo_c are not installed")]

PIPELINE = """\
[pipeline]
stages = ["network", "publish"]
source_date_epoch = 1700000000

[network]
device = "eth0"
address = "192.0.2.10/24"
gateway = "192.0.2.1"
rpm = { name = "net-policy", version = "1" }

[publish]
repo = "repo"
"""
SECRET_TIME = 1_000_000_000


@pytest.fixture
def fast_switches() -> Iterator[None]:
    # The racer gets the GIL as often as the interpreter gives it: many more chances per try.
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_a_racing_symlink_at_the_repository_entry_never_changes_what_it_points_to(
        tmp_path: Path, fast_switches: None) -> None:
    (tmp_path / "pub.toml").write_text(PIPELINE)
    manifest = json.loads(respin("run", "pub.toml", "--json", cwd=tmp_path).stdout)
    (package,) = [Path(a["path"]) for a in manifest["artifacts"] if a["kind"] == "published-package"]
    repo = package.parent
    entry = yumrepo.entry(package)
    assert entry.build_time is not None and package.stat().st_mode & 0o777 == 0o644
    assert int(package.stat().st_mtime) == entry.build_time

    # A file only its owner may read (root's, when the tests run as root), and another user's
    # thread that, as soon as the package appears in the repository, puts a link to it there.
    secret = tmp_path / "secret"
    secret.write_text("root only\n")
    secret.chmod(0o600)
    os.utime(secret, (SECRET_TIME, SECRET_TIME))
    source = tmp_path / "built" / package.name
    source.parent.mkdir()
    shutil.copyfile(package, source)
    stop = threading.Event()
    swapped = [0]

    def racer() -> None:
        link = repo / ".racer-link"
        while not stop.is_set():
            try:
                if not stat.S_ISREG(os.lstat(package).st_mode):
                    continue
            except FileNotFoundError:
                continue
            link.unlink(missing_ok=True)
            link.symlink_to(secret)
            os.replace(link, package)
            swapped[0] += 1

    thread = threading.Thread(target=racer, daemon=True)
    thread.start()
    try:
        for _ in range(300):
            package.unlink(missing_ok=True)
            yumrepo.add_packages(repo, [yumrepo.Entry(source, entry.nevra, entry.sha256, entry.build_time)])
            st = secret.stat()
            assert (st.st_mode & 0o777, int(st.st_mtime)) == (0o600, SECRET_TIME), "followed the link"
    finally:
        stop.set()
        thread.join()
    assert swapped[0] > 100, swapped  # the racer won the name that often, and changed nothing
