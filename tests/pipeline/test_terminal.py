"""respin on a terminal: the live progress line and the log lines share stderr."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
from pathlib import Path

import pytest
from respin_cli import RESPIN

from fixtures.build import build_srpm


@pytest.fixture(scope="module")
def srpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("rpmbuild") is None:
        pytest.skip("rpmbuild is not installed")
    return build_srpm("kernel-2010", tmp_path_factory.mktemp("srpm"))


def on_a_terminal(*args: str | Path, cwd: Path) -> tuple[int, str]:
    """Run respin with stdout and stderr on a pseudo-terminal; its exit status and what the
    terminal received."""
    main, sub = pty.openpty()
    proc = subprocess.Popen([str(RESPIN), *map(str, args)], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=sub, stderr=sub)
    os.close(sub)
    out = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    return proc.wait(timeout=120), out.decode(errors="replace")


def shown(raw: str) -> list[str]:
    """The lines a terminal shows: each line is what follows its last carriage return (the
    progress line rewrites itself with CR and erase-line)."""
    return [line.rsplit("\r", 1)[-1].replace("\033[K", "") for line in raw.replace("\r\n", "\n").split("\n")]


def test_log_lines_never_run_into_the_live_progress_line(tmp_path: Path, srpm: Path) -> None:
    pf = tmp_path / "kernel.toml"
    pf.write_text(f'[pipeline]\ntarget = "i686"\nworkdir = "work"\n\n[fetch]\nsrpm = "{srpm}"\n\n'
                  '[config]\nset = { CONFIG_RESPIN_FEATURE_A = "y" }\n')
    code, raw = on_a_terminal("run", pf, "--until", "prep", cwd=tmp_path)
    assert code == 0, raw
    lines = shown(raw)
    logged = [ln for ln in lines if "respin:" in ln]
    assert logged, raw
    assert all(ln.startswith("respin: ") for ln in logged), logged
    # While rpmbuild runs, a line names its log.
    log = tmp_path / "work/stages/prep/prep.log"
    assert f"respin: rpmbuild -bp of kernel.spec: running; its output goes to {log}" in lines, lines
    assert "[2/2] prep: done in" in raw
