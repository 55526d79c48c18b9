"""Attacks on the network commands: hostile file names, hostile image roots, racing users."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from respin_cli import respin

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "network"
# A name that would put command lines into a shell-sourced file if written raw: after a
# newline, a carriage return, the line breaks YAML and Python also read (NEL, LINE
# SEPARATOR), and a backslash that would join a systemd comment line to the next.
HOSTILE_NAME = ("net\nX=$(touch PWNED)\rY=$(touch PWNED)\x85Z=$(touch PWNED)\u2028"
                "W=$(touch PWNED)\\\nV=$(touch PWNED)\n#.toml")
RENDERS = [("initscripts", "d"), ("initscripts", "merge"), ("networkmanager", "d"),
           ("networkd", "d"), ("nmstate", "d")]


def _assert_header_stays_a_comment(path: Path) -> None:
    """The hostile name is only ever on the first line, which is a comment of one line."""
    text = path.read_bytes().decode()
    lines = text.split("\n")
    for n, line in enumerate(lines):
        if "PWNED" in line:
            assert line.startswith("# Written by respin from "), (path, n, line)
    header = next((ln for ln in lines if "PWNED" in ln), None)
    if header is not None:
        assert header.isprintable() and "\\" not in header, (path, header)
    # No character any of the formats reads as a line break, other than "\n" itself.
    assert text.splitlines() == text.rstrip("\n").split("\n"), path


def _assert_rendered_tree_is_safe(root: Path, cwd: Path) -> None:
    """Every rendered file keeps the name in its comment; sourcing an ifcfg file (as
    initscripts do, with bash) runs nothing."""
    rendered = [p for p in root.rglob("*") if p.is_file() and p.name != "network.json"]
    assert rendered
    for path in rendered:
        _assert_header_stays_a_comment(path)
    for ifcfg in root.rglob("ifcfg-*"):
        subprocess.run(["bash", "-c", '. "$1"', "bash", str(ifcfg)], cwd=cwd, check=True,
                       capture_output=True)
    assert not (cwd / "PWNED").exists()


@pytest.mark.parametrize(("backend", "mode"), RENDERS, ids=[f"{b}-{m}" for b, m in RENDERS])
def test_net_hostile_model_name_stays_in_the_header_comment(tmp_path: Path, backend: str,
                                                             mode: str) -> None:
    model = tmp_path / HOSTILE_NAME
    model.write_text((FIXTURES / "two-aliases.toml").read_text())
    root = tmp_path / "root"
    respin("net", "render", model, "--root", root, "--backend", backend, "--rt-tables", mode,
           cwd=tmp_path)
    _assert_rendered_tree_is_safe(root, tmp_path)


def test_net_hostile_model_name_stays_in_the_script_comment(tmp_path: Path) -> None:
    model = tmp_path / HOSTILE_NAME
    model.write_text((FIXTURES / "two-aliases.toml").read_text())
    script = tmp_path / "setup.sh"
    script.write_text(respin("net", "script", model, cwd=tmp_path).stdout)
    _assert_header_stays_a_comment(script)
    # Only the comment lines: running them must do nothing (the rest needs a real device).
    comments = "".join(ln for ln in script.read_text().splitlines(keepends=True)
                       if not ln.startswith("ip ") and not ln.startswith("["))
    subprocess.run(["sh", "-c", comments], cwd=tmp_path, check=True, capture_output=True)
    assert not (tmp_path / "PWNED").exists()


def test_net_hostile_pipeline_file_name_stays_in_the_header_comment(tmp_path: Path) -> None:
    pipeline = tmp_path / HOSTILE_NAME
    pipeline.write_text('[pipeline]\nworkdir = "work"\n'
                        + (FIXTURES / "pipeline.toml").read_text().split("[pipeline]\n", 1)[1])
    respin("run", pipeline, cwd=tmp_path)
    _assert_rendered_tree_is_safe(tmp_path / "image", tmp_path)
