"""Bad input a new user meets in the first hour: one line naming the input, the documented code."""

from __future__ import annotations

from pathlib import Path

import pytest
from respin_cli import assert_one_line_error, respin

KERNEL_TOML = '[pipeline]\ntarget = "i686"\nworkdir = "work"\n\n[fetch]\nsrpm = "kernel.src.rpm"\n'


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


@pytest.mark.parametrize("command", [["run"], ["run", "--json"], ["status"], ["makefile"], ["repro"]])
def test_a_pipeline_file_that_is_not_utf8_is_named(tmp_path: Path, command: list[str]) -> None:
    bad = write(tmp_path / "bad.toml", b"# caf\xe9\n" + KERNEL_TOML.encode())
    proc = respin(*command, bad, check=False)
    assert_one_line_error(proc, 3, "bad.toml: not UTF-8 text (byte 0xe9 at offset 5)")
    assert proc.stdout == "" or command == ["run", "--json"]
    assert not (tmp_path / "work").exists()
