"""The kept build tree of an incremental rebuild: reused only when nothing but the config
changed and the last build in it ended well; one run at a time."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from respin.pipeline.errors import LockedError
from respin.stages.kernel.lib.keptree import BUILDING, RECORD, KeptTree, Provenance, key, stale, tool_versions

BUILT = Provenance(package="kernel-6.1.192-1.fc37", arch="x86_64", variant="",
                   sources={"linux-6.1.tar.xz": "a" * 64, "linux-6.1-fix.patch": "b" * 64},
                   spec="c" * 64, tools={"compiler": "gcc (Debian 12.2.0-14) 12.2.0",
                                         "linker": "GNU ld (GNU Binutils for Debian) 2.40",
                                         "pahole": "none"})


def test_the_same_inputs_may_reuse_the_tree() -> None:
    assert stale(BUILT, dataclasses.replace(BUILT)) is None


@pytest.mark.parametrize(("change", "why"), [
    ({"package": "kernel-6.1.193-1.fc37"},
     "of package kernel-6.1.192-1.fc37, this build is of kernel-6.1.193"),
    ({"arch": "aarch64"}, "of arch x86_64, this build is of aarch64"),
    ({"variant": "debug"}, "of variant base, this build is of debug"),
    ({"sources": {**BUILT.sources, "linux-6.1-fix.patch": "d" * 64}},
     "other sources or patches than the kept tree was built from (linux-6.1-fix.patch)"),
    ({"sources": {**BUILT.sources, "new.patch": "e" * 64}}, "(new.patch)"),
    ({"spec": "f" * 64}, "the spec changed beyond the config change"),
    ({"tools": {**BUILT.tools, "compiler": "gcc (Debian 11.3.0-12) 11.3.0"}},
     "the compiler changed since the kept tree was built (gcc (Debian 12.2.0-14) 12.2.0 -> gcc (Debian 11"),
    # Installing pahole changes the config Kconfig writes (CONFIG_PAHOLE_VERSION).
    ({"tools": {**BUILT.tools, "pahole": "v1.24"}},
     "the pahole changed since the kept tree was built (none -> v1.24)"),
])
def test_each_other_input_makes_the_tree_stale_and_says_which(change: dict[str, object], why: str) -> None:
    said = stale(BUILT, dataclasses.replace(BUILT, **change))  # type: ignore[arg-type]
    assert said is not None and why in said, said


def test_a_tree_is_trusted_only_after_a_build_in_it_ended_well(tmp_path: Path) -> None:
    kept = KeptTree(tmp_path, key("kernel-6.1.192-1.fc37", "x86_64", ""))
    assert kept.dir.name == "kernel-6.1.192-1.fc37.x86_64"
    assert kept.why_not(BUILT) == "no tree is kept yet"
    with kept.claim():
        kept.begin()
        kept.tree.mkdir()
        # Killed here: the mark stays, and the tree is not trusted, whatever its record said.
    assert kept.why_not(BUILT) == "the last build in the kept tree failed or was killed"
    with kept.claim():
        kept.begin()
        kept.finish(BUILT)
    assert not (kept.dir / BUILDING).exists()
    assert kept.recorded() == BUILT and kept.why_not(BUILT) is None
    assert kept.why_not(dataclasses.replace(BUILT, arch="i686")) is not None
    # The next build drops the record first: a build that fails leaves no trusted record.
    with kept.claim():
        kept.begin()
    assert not (kept.dir / RECORD).exists()
    assert kept.why_not(BUILT) == "the last build in the kept tree failed or was killed"


@pytest.mark.parametrize("junk", ["", "[]", '{"package": 1}', '{"nope": true}', "not json"])
def test_a_damaged_record_is_no_record(tmp_path: Path, junk: str) -> None:
    kept = KeptTree(tmp_path, "k")
    kept.tree.mkdir(parents=True)
    (kept.dir / RECORD).write_text(junk)
    assert kept.why_not(BUILT) == "the kept tree has no record of what it was built from"


def test_a_record_that_is_a_link_is_not_read(tmp_path: Path) -> None:
    kept = KeptTree(tmp_path, "k")
    kept.tree.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(BUILT.to_json()))
    (kept.dir / RECORD).symlink_to(elsewhere)
    assert kept.recorded() is None


def test_two_runs_never_build_in_one_tree_at_once(tmp_path: Path) -> None:
    kept = KeptTree(tmp_path, "k")
    busy = pytest.raises(LockedError, match="another respin run is building in this kept tree")
    with kept.claim(), busy, KeptTree(tmp_path, "k").claim():
        pass
    with kept.claim():  # released when the first ended
        pass


def test_the_tools_kconfig_records_are_read_from_the_builds_path(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, line in (("gcc", "gcc (Test) 99.1"), ("ld", "GNU ld (Test) 9.9")):
        tool = bin_dir / name
        tool.write_text(f"#!/bin/sh\necho '{line}'\necho second line\n")
        tool.chmod(0o755)
    found = tool_versions({"PATH": str(bin_dir)})
    assert found == {"compiler": "gcc (Test) 99.1", "linker": "GNU ld (Test) 9.9", "pahole": "none"}
    # The host's own, through the usual PATH: whatever is installed, one line each.
    assert all(v and "\n" not in v for v in tool_versions({"PATH": os.environ["PATH"]}).values())
