"""A file the network stage staged into an image root and a user changed by hand: `status` and
`run` notice it and name it; the refusal names the option that really replaces it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from respin_cli import assert_one_line_error, respin

from respin.pipeline.errors import InputError

pytestmark = pytest.mark.slow  # builds packages or runs whole pipelines

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "network"
IFCFG = "etc/sysconfig/network-scripts/ifcfg-eth0"


def _staged(tmp_path: Path) -> Path:
    """Run the fixture pipeline once in `tmp_path`; return the pipeline file."""
    pipeline = tmp_path / "pipeline.toml"
    shutil.copy(FIXTURES / "pipeline.toml", pipeline)
    (tmp_path / "image").mkdir()
    respin("run", pipeline.name, cwd=tmp_path)
    return pipeline


def test_net_hand_edit_of_a_staged_file_is_noticed_and_force_true_replaces_it(tmp_path: Path) -> None:
    pipeline = _staged(tmp_path)
    staged = tmp_path / "image" / IFCFG
    rendered = (tmp_path / "_respin/pipeline/stages/network/netfiles" / IFCFG).read_bytes()
    edited = rendered + b"MTU=9000\n"
    staged.write_bytes(edited)

    status = respin("status", pipeline.name, cwd=tmp_path, check=False)
    assert (status.returncode, status.stdout) == (1, f"network  output changed: {staged}\n")

    # A plain run and `run --force` both rerun the stage, and both refuse to overwrite the edit.
    for extra in ((), ("--force",)):
        proc = respin("run", *extra, pipeline.name, cwd=tmp_path, check=False)
        assert_one_line_error(proc, InputError.exit_code, f"{staged}: was changed since respin wrote it",
                              "set force = true in [network] to replace it",
                              "`respin run --force` only reruns the stage")
        assert staged.read_bytes() == edited

    # The option the message names works.
    pipeline.write_text(pipeline.read_text().replace('root = "image"\n', 'root = "image"\nforce = true\n'))
    proc = respin("run", pipeline.name, cwd=tmp_path)
    assert "write etc/sysconfig/network-scripts/ifcfg-eth0\n" in proc.stderr
    assert staged.read_bytes() == rendered
    again = respin("run", pipeline.name, cwd=tmp_path)
    assert "nothing to do" in again.stderr
    assert respin("status", pipeline.name, cwd=tmp_path).stdout == "network  up to date\n"


def test_net_removed_staged_file_is_noticed_and_put_back(tmp_path: Path) -> None:
    pipeline = _staged(tmp_path)
    staged = tmp_path / "image" / IFCFG
    staged.unlink()
    assert respin("status", pipeline.name, cwd=tmp_path, check=False).stdout == \
        f"network  output missing: {staged}\n"
    respin("run", pipeline.name, cwd=tmp_path)
    assert staged.is_file()


def test_net_rt_tables_merge_runs_once_and_an_edit_of_rt_tables_is_kept(tmp_path: Path) -> None:
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text((FIXTURES / "pipeline.toml").read_text()
                        .replace('root = "image"\n', 'root = "image"\nrt_tables = "merge"\n'))
    rt_tables = tmp_path / "image/etc/iproute2/rt_tables"
    rt_tables.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / "rt_tables.stock", rt_tables)
    respin("run", pipeline.name, cwd=tmp_path)
    # The merge edits the image's own file: the next run must not take that for a change.
    assert "nothing to do" in respin("run", pipeline.name, cwd=tmp_path).stderr

    rt_tables.write_text(rt_tables.read_text() + "200\tvpn\n")
    assert respin("status", pipeline.name, cwd=tmp_path, check=False).stdout == \
        f"network  output changed: {rt_tables}\n"
    respin("run", pipeline.name, cwd=tmp_path)
    text = rt_tables.read_text()
    assert "200\tvpn\n" in text and text.count("1\ttest") == 1
    assert "nothing to do" in respin("run", pipeline.name, cwd=tmp_path).stderr
