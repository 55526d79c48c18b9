"""`respin net` and the network stage given the wrong thing: each is one line naming it and saying
what it is (a pipeline file, not UTF-8, an image root that is missing or not a directory)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from respin_cli import assert_one_line_error, respin

from respin.pipeline.errors import ConfigError, InputError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "network"
NET = FIXTURES / "net.toml"
IFCFG = "etc/sysconfig/network-scripts/ifcfg-eth0"

KERNEL_PIPELINE = """\
[pipeline]
target = "x86_64"

[fetch]
srpm = "kernel-6.1.0-1.src.rpm"

[config]
set = { CONFIG_B = "y" }
"""


def _net_commands(model: Path, tmp_path: Path) -> list[tuple[str | Path, ...]]:
    return [("net", "check", model), ("net", "script", model),
            ("net", "render", model, "--root", tmp_path / "image")]


@pytest.mark.parametrize("text", [KERNEL_PIPELINE, KERNEL_PIPELINE.split("\n\n", 1)[1]],
                         ids=["with-pipeline-table", "stage-tables-only"])
def test_net_commands_given_a_pipeline_file_say_so(tmp_path: Path, text: str) -> None:
    kernel = tmp_path / "kernel.toml"
    kernel.write_text(text)
    for args in _net_commands(kernel, tmp_path):
        assert_one_line_error(respin(*args, check=False), ConfigError.exit_code,
                              f"{kernel}: is a pipeline file with no [network] table, not a network model")
    assert not (tmp_path / "image").exists()


def test_net_commands_given_a_model_that_is_not_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"# caf\xe9\n" + NET.read_bytes())
    for args in _net_commands(bad, tmp_path):
        proc = respin(*args, check=False)
        assert proc.stderr == f"respin: error: {bad}: not UTF-8 text (byte 0xe9 at offset 5)\n"
        assert proc.returncode == ConfigError.exit_code
    assert not (tmp_path / "image").exists()


def test_net_render_makes_a_missing_image_root_inside_an_existing_directory(tmp_path: Path) -> None:
    root = tmp_path / "image"
    proc = respin("net", "render", NET, "--root", root)
    assert f"made image root {root} (it did not exist)" in proc.stderr
    assert (root / IFCFG).is_file()

    # A missing parent is most likely a typo: reported, nothing made.
    deep = tmp_path / "imgae" / "root"
    assert_one_line_error(respin("net", "render", NET, "--root", deep, check=False), InputError.exit_code,
                          f"{deep}: image root does not exist, and neither does {deep.parent}")
    assert not deep.parent.exists()


def test_net_image_root_that_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x\n")
    assert_one_line_error(respin("net", "render", NET, "--root", tmp_path / "file", check=False),
                          InputError.exit_code, f"{tmp_path / 'file'}: image root is not a directory")
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    assert_one_line_error(respin("net", "render", NET, "--root", tmp_path / "link", check=False),
                          InputError.exit_code,
                          f"{tmp_path / 'link'}: image root is a symlink to {tmp_path / 'gone'}, "
                          "which does not exist")
    assert (tmp_path / "file").read_text() == "x\n" and not (tmp_path / "gone").exists()


def test_net_pipeline_makes_its_missing_image_root(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "pipeline.toml", tmp_path / "pipeline.toml")
    proc = respin("run", "pipeline.toml", cwd=tmp_path)
    assert f"made image root {tmp_path / 'image'}" in proc.stderr
    assert (tmp_path / "image" / IFCFG).is_file()
