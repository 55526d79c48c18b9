"""respin writes only in a work dir it made: one per pipeline file, marked, never someone else's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from respin_cli import assert_one_line_error, respin

from respin.pipeline.workdirs import MARK

KERNEL = ('[pipeline]\ntarget = "i686"\n{workdir}\n[fetch]\nsrpm = "kernel.src.rpm"\n\n'
          '[config]\nset = {{ CONFIG_RESPIN_FEATURE_A = "y" }}\n')


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def listing(top: Path) -> list[str]:
    return sorted(str(p.relative_to(top)) for p in top.rglob("*"))


def test_a_directory_holding_someone_elses_files_is_refused_before_any_stage(tmp_path: Path) -> None:
    patch = write(tmp_path / "existing/rpmbuild/SOURCES/important.patch", "mine\n")
    pf = write(tmp_path / "kernel.toml", KERNEL.format(workdir='workdir = "existing"'))
    before = listing(tmp_path / "existing")
    for command in ("run", "status"):
        proc = respin(command, pf, check=False)
        assert_one_line_error(proc, 3, f"[pipeline] workdir {tmp_path / 'existing'}: directory exists, "
                              "is not empty and is no respin work dir")
        assert "[1/" not in proc.stderr  # no stage began
    assert patch.read_text() == "mine\n"
    assert listing(tmp_path / "existing") == before  # nothing written there, not even a lock


def test_workdir_home_is_refused_and_its_rpmbuild_tree_kept(tmp_path: Path) -> None:
    home = tmp_path / "home"
    patch = write(home / "rpmbuild/SOURCES/important.patch", "mine\n")
    write(home / ".bashrc", "# mine\n")
    pf = write(tmp_path / "kernel.toml", KERNEL.format(workdir=""))
    proc = respin("run", pf, "--workdir", home, check=False, env={"HOME": str(home)})
    assert_one_line_error(proc, 2, f"--workdir {home}: directory exists, is not empty")
    assert patch.read_text() == "mine\n" and listing(home) == [".bashrc", "rpmbuild", "rpmbuild/SOURCES",
                                                               "rpmbuild/SOURCES/important.patch"]


def test_an_empty_directory_is_adopted_and_marked(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    pf = write(tmp_path / "p.toml", '[pipeline]\nworkdir = "w"\n\n[example-write]\ntext = "x"\n')
    respin("run", pf)
    mark = json.loads((tmp_path / "w" / MARK).read_text())
    assert mark["pipeline"] == str(pf) and mark["made_by"].startswith("respin ")
    assert "nothing to do" in respin("run", pf).stderr


def test_a_work_dir_of_an_earlier_respin_is_recognised_and_marked(tmp_path: Path) -> None:
    pf = write(tmp_path / "p.toml", '[pipeline]\nworkdir = "w"\n\n[example-write]\ntext = "x"\n')
    respin("run", pf)
    (tmp_path / "w" / MARK).unlink()  # as an earlier respin left it: state/ and a manifest
    assert "nothing to do" in respin("run", pf).stderr
    assert json.loads((tmp_path / "w" / MARK).read_text())["pipeline"] == str(pf)
    # One an earlier respin made for another pipeline file is that file's.
    (tmp_path / "w" / MARK).unlink()
    other = write(tmp_path / "other.toml", '[pipeline]\nworkdir = "w"\n\n[example-write]\ntext = "y"\n')
    assert_one_line_error(respin("run", other, check=False), 3,
                          f"is the work dir of another pipeline file, {pf}")
    assert not (tmp_path / "w" / MARK).exists()


def test_each_pipeline_file_has_its_own_default_work_dir(tmp_path: Path) -> None:
    kernel = write(tmp_path / "kernel.toml", '[example-write]\ntext = "kernel"\n')
    other = write(tmp_path / "other.toml", '[example-write]\ntext = "other"\n')
    respin("run", kernel)
    respin("run", other)
    assert (tmp_path / "_respin/kernel/stages/example-upper/upper.txt").read_text() == "KERNEL"
    assert (tmp_path / "_respin/other/stages/example-upper/upper.txt").read_text() == "OTHER"
    assert "nothing to do" in respin("run", kernel).stderr  # the other run replaced nothing
    # A work dir made for another pipeline file is refused in one line naming that file.
    cases: list[tuple[list[str | Path], int]] = [(["--workdir", tmp_path / "_respin/kernel"], 2), ([], 3)]
    for flags, code in cases:
        if not flags:
            write(other, '[pipeline]\nworkdir = "_respin/kernel"\n\n[example-write]\ntext = "other"\n')
        proc = respin("run", other, *flags, check=False)
        assert_one_line_error(proc, code, f"{tmp_path / '_respin/kernel'}: is the work dir of another "
                              f"pipeline file, {kernel}")
    assert (tmp_path / "_respin/kernel/stages/example-upper/upper.txt").read_text() == "KERNEL"


@pytest.mark.parametrize("flags", [["--from", "example-upper"], ["--only", "example-upper"]])
def test_a_failed_invocation_leaves_no_work_dir(tmp_path: Path, flags: list[str]) -> None:
    pf = write(tmp_path / "p.toml", '[example-write]\ntext = "x"\n')
    assert_one_line_error(respin("run", pf, *flags, check=False), 2, "not up to date")
    assert listing(tmp_path) == ["p.toml"]
    # Nor anything in an empty directory it was to adopt.
    (tmp_path / "empty").mkdir()
    proc = respin("run", pf, "--workdir", tmp_path / "empty", *flags, check=False)
    assert_one_line_error(proc, 2, "not up to date")
    assert listing(tmp_path) == ["empty", "p.toml"]


def test_a_missing_input_fails_before_its_stage_and_leaves_no_work_dir(tmp_path: Path) -> None:
    pf = write(tmp_path / "p.toml", '[example-write]\nsource = "gone.txt"\n')
    proc = respin("run", pf, "--json", check=False)
    assert_one_line_error(proc, 4, f"{tmp_path / 'gone.txt'}: no such file (an input of stage "
                          "'example-write')")
    assert json.loads(proc.stdout)["error"]["stage"] == "example-write"
    assert "[1/2]" not in proc.stderr and listing(tmp_path) == ["p.toml"]
    # In a work dir that is already there, the failed run is recorded as any failed stage is.
    write(pf, '[example-write]\ntext = "x"\n')
    respin("run", pf)
    write(pf, '[example-write]\nsource = "gone.txt"\n')
    assert_one_line_error(respin("run", pf, check=False), 4, "gone.txt: no such file")
    manifest = json.loads((tmp_path / "_respin/p/manifest.json").read_text())
    assert manifest["error"]["stage"] == "example-write"
