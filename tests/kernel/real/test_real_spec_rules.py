"""The real spec's rules, on the real-kernel package (Debian's 6.1 tree, today's Fedora layout).

Each case is what went wrong on Fedora's own package: a change that opens
new symbols passed every stage and then failed the spec's own
process_configs.sh; the -rhel configs a Fedora build deletes were checked
and edited; the rebuilt package lost its .fc37; CONFIG_LOCALVERSION made a
kernel that cannot find its modules. Here respin refuses before any build,
or the result passes the spec's own %prep, run by the real rpmbuild.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from respin_cli import assert_one_line_error, respin

from respin.stages.kernel.lib.rpmpkg import read_package

pytestmark = pytest.mark.slow

# CONFIG_PACKET opens CONFIG_PACKET_DIAG, which then has no value: `make listnewconfig`
# lists it and the spec's process_configs.sh -n refuses the build.
OPENS_NEW = 'set = { CONFIG_PACKET = "y" }'


@pytest.fixture(scope="module")
def prepared(real_srpm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose work dir has fetched and prepared the real SRPM once; each test
    writes its own [config] and the fetch and prep stages stay up to date."""
    where = tmp_path_factory.mktemp("rules")
    respin("run", pipeline(where, real_srpm, OPENS_NEW), "--until", "prep")
    return where


def pipeline(where: Path, srpm: Path, config: str, rebuild: str = 'mode = "source"') -> Path:
    path = where / "kernel.toml"
    path.write_text(f'[pipeline]\ntarget = "x86_64"\nworkdir = "work"\n\n[fetch]\nsrpm = "{srpm}"\n\n'
                    f"[config]\n{config}\n\n[rebuild]\n{rebuild}\n")
    return path


def artifact(manifest: dict[str, Any], kind: str, stage: str | None = None) -> dict[str, Any]:
    return next(a for a in manifest["artifacts"] if a["kind"] == kind and stage in (None, a["stage"]))


def test_a_change_that_opens_new_symbols_is_refused_before_any_build(prepared: Path,
                                                                     real_srpm: Path) -> None:
    proc = respin("run", pipeline(prepared, real_srpm, OPENS_NEW), check=False)
    assert_one_line_error(proc, 3, "CONFIG_PACKET_DIAG (default n)", "new symbol", "resolve = true")
    assert "rebuild: running" not in proc.stderr


def test_localversion_is_refused_where_modules_follow_the_release(prepared: Path, real_srpm: Path) -> None:
    proc = respin("run", pipeline(prepared, real_srpm, 'set = { CONFIG_LOCALVERSION = "-respin" }'),
                  check=False)
    assert_one_line_error(proc, 3, "CONFIG_LOCALVERSION", "/lib/modules/6.1.", ".fc37.x86_64", "buildid")


def test_resolved_change_passes_the_specs_own_prep(prepared: Path, real_srpm: Path, tmp_path: Path) -> None:
    proc = respin("run", pipeline(prepared, real_srpm, OPENS_NEW + "\nresolve = true"), "--until", "rebuild",
                  "--json")
    manifest = json.loads(proc.stdout)
    # The new symbol gets its Kconfig default, written out and listed as added.
    edited = artifact(manifest, "kconfig-edited")["meta"]
    assert edited["resolved"] == {
        "# CONFIG_PACKET_DIAG is not set": "a new symbol the change opens, at its Kconfig default"}
    local = Path(artifact(manifest, "kernel-local", "config")["path"]).read_text().splitlines()
    assert "CONFIG_PACKET=y" in local and "# CONFIG_PACKET_DIAG is not set" in local
    # Only the configs a Fedora build keeps were checked; the log says why.
    assert sorted(edited["chosen"]) == ["kernel-x86_64-debug-fedora.config", "kernel-x86_64-fedora.config"]
    assert "%prep deletes kernel-x86_64-debug-rhel.config, kernel-x86_64-rhel.config" in proc.stderr
    # The SRPM was made for Fedora 37, and so is the rebuilt one, marked before the dist tag.
    assert artifact(manifest, "source-srpm")["meta"]["dist_defines"] == {"dist": ".fc37", "fedora": "37"}
    srpm = Path(artifact(manifest, "srpm")["path"])
    assert read_package(srpm).release == "200.respin.fc37"
    # The spec's own %prep (generate_all_configs, merge of kernel-local, process_configs.sh
    # -w -n -c with the tree's make listnewconfig and olddefconfig) accepts the result.
    top = tmp_path / "top"
    subprocess.run(["rpm", "-i", "--nodeps", "--define", f"_topdir {top}", str(srpm)], check=True,
                   capture_output=True, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    prep = subprocess.run(["rpmbuild", "-bp", "--nodeps", "--target", "x86_64", "--define", f"_topdir {top}",
                           "--define", "dist .fc37", "--define", "fedora 37", str(top / "SPECS/kernel.spec")],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={"HOME": str(tmp_path), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    assert prep.returncode == 0, prep.stdout[-3000:] + prep.stderr[-3000:]
    assert "Found unset config items" not in prep.stdout + prep.stderr
    shutil.rmtree(top, ignore_errors=True)
