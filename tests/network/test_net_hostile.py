"""Attacks on the network commands: hostile file names, hostile image roots, racing users."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from respin_cli import assert_one_line_error, respin

from respin.pipeline.errors import InputError
from respin.stages.network.lib import rt_tables
from respin.stages.network.lib.model import load_model
from respin.stages.network.lib.render import render
from respin.stages.network.lib.root import STATE_PATH, stage_into_root

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "network"
NET = FIXTURES / "net.toml"
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


# --- A hostile image root: its staging record ----------------------------------------------

VICTIM_TEXT = "the host's own file\n"


def _plant_state(root: Path, *, files: dict[str, str] | None = None, merged: list[str] | None = None) -> None:
    """A staging record as an image's owner may write it: paths of their choosing, each with
    the sha256 its target has (so it passes for respin's own, unchanged file)."""
    entries = {rel: {"sha256": hashlib.sha256(Path(target).read_bytes()).hexdigest(), "mode": "0644"}
               for rel, target in (files or {}).items()}
    state = root / STATE_PATH
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"format": 1, "files": entries, "merged": merged or []}))


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("listed", ["../../victim", "/abs"], ids=["dotdot", "absolute"])
def test_net_hostile_state_cannot_delete_a_host_file(tmp_path: Path, listed: str, force: bool) -> None:
    victim = tmp_path / "victim"
    victim.write_text(VICTIM_TEXT)
    root = tmp_path / "image" / "root"
    rel = str(victim) if listed == "/abs" else listed
    _plant_state(root, files={rel: str(victim)})
    proc = respin("net", "render", NET, "--root", root, *(["--force"] if force else []), check=False)
    assert_one_line_error(proc, InputError.exit_code, f"{root / STATE_PATH}: lists ",
                          "which is not a path inside the image root")
    assert victim.read_text() == VICTIM_TEXT
    assert not (root / "etc").exists()  # refused before anything was written


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("listed", ["../../victim", "/abs", "etc/passwd"],
                         ids=["dotdot", "absolute", "not-rt_tables"])
def test_net_hostile_state_cannot_rewrite_a_file_as_merged(tmp_path: Path, listed: str, force: bool) -> None:
    """A path listed as merged would have respin's block taken out of it: a rewrite."""
    text = f"keep\n{rt_tables.BEGIN}\n1\ttest\n{rt_tables.END}\n"
    root = tmp_path / "image" / "root"
    victim = root / "etc" / "passwd" if listed == "etc/passwd" else tmp_path / "victim"
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_text(text)
    _plant_state(root, merged=[str(victim) if listed == "/abs" else listed])
    proc = respin("net", "render", NET, "--root", root, *(["--force"] if force else []), check=False)
    assert_one_line_error(proc, InputError.exit_code, f"{root / STATE_PATH}: lists ")
    assert victim.read_text() == text


# --- A hostile image root: links to a host's secret ----------------------------------------

SECRET = "root:$6$SECRETHASH:19000:0:99999:7:::\n"
SECRET_TABLE = "7\tSECRETTABLE\n"  # a secret that parses as rt_tables: a merge would copy it


@pytest.fixture(params=[SECRET, SECRET_TABLE], ids=["shadow", "parses"])
def secret(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A root-only file outside the image root, as /etc/shadow is."""
    path = tmp_path / "shadow"
    path.write_text(request.param)
    path.chmod(0o600)
    return path


def _assert_secret_kept(secret: Path, root: Path, proc: subprocess.CompletedProcess[str]) -> None:
    words = ("SECRET",)
    for word in words:
        assert word not in proc.stdout and word not in proc.stderr
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert word not in path.read_text(errors="replace"), path
    assert secret.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("mode", ["d", "merge"])
@pytest.mark.parametrize("planted", [rt_tables.RT_TABLES, rt_tables.RT_TABLES_VENDOR,
                                     f"{rt_tables.RT_TABLES_D}/vendor.conf"],
                         ids=["rt_tables", "vendor", "dropin"])
def test_net_symlinked_image_tables_are_refused_unread(tmp_path: Path, secret: Path, planted: str,
                                                       mode: str) -> None:
    root = tmp_path / "root"
    (root / planted).parent.mkdir(parents=True)
    (root / planted).symlink_to(secret)
    proc = respin("net", "render", NET, "--root", root, "--rt-tables", mode, check=False)
    if mode == "merge" and planted.endswith(".conf"):
        # A merge reads no drop-ins (it stages none); the link stays as it was.
        assert proc.returncode == 0, proc.stderr
    else:
        assert_one_line_error(proc, InputError.exit_code, f"{root / planted}: ", "is a symlink; refusing")
    assert (root / planted).is_symlink()
    _assert_secret_kept(secret, root, proc)


def test_net_symlinked_image_directory_is_refused_unread(tmp_path: Path, secret: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "rt_tables").symlink_to(secret)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "iproute2").symlink_to(outside)
    proc = respin("net", "render", NET, "--root", root, "--rt-tables", "merge", check=False)
    assert_one_line_error(proc, InputError.exit_code, f"{root / 'etc/iproute2'}: is a symlink; refusing")
    _assert_secret_kept(secret, root, proc)
    assert sorted(os.listdir(outside)) == ["rt_tables"]


def test_net_symlinked_state_is_refused_unread(tmp_path: Path, secret: Path) -> None:
    root = tmp_path / "root"
    (root / STATE_PATH).parent.mkdir(parents=True)
    (root / STATE_PATH).symlink_to(secret)
    proc = respin("net", "render", NET, "--root", root, "--force", check=False)
    assert_one_line_error(proc, InputError.exit_code, f"{root / STATE_PATH}: ", "is a symlink; refusing")
    _assert_secret_kept(secret, root, proc)


def test_net_corrupt_image_tables_line_is_not_quoted(tmp_path: Path) -> None:
    """A regular file holding a copy of a secret: the error names the line, never shows it."""
    root = tmp_path / "root"
    (root / rt_tables.RT_TABLES).parent.mkdir(parents=True)
    (root / rt_tables.RT_TABLES).write_text("255 local\n" + SECRET)
    proc = respin("net", "render", NET, "--root", root, "--rt-tables", "merge", check=False)
    assert_one_line_error(proc, InputError.exit_code,
                          f"{root / rt_tables.RT_TABLES}:2: not an rt_tables line")
    assert "SECRET" not in proc.stderr


@pytest.mark.parametrize(("before", "after"), [(0o600, 0o600), (0o644, 0o644), (0o777, 0o644),
                                               (0o4755, 0o644)])
def test_net_merged_rt_tables_keeps_a_sane_mode(tmp_path: Path, before: int, after: int) -> None:
    root = tmp_path / "root"
    target = root / rt_tables.RT_TABLES
    target.parent.mkdir(parents=True)
    target.write_text("255\tlocal\n")
    target.chmod(before)
    respin("net", "render", NET, "--root", root, "--rt-tables", "merge")
    assert target.stat().st_mode & 0o7777 == after
    assert target.read_text().startswith("255\tlocal\n") and "1\ttest" in target.read_text()


# --- A second user racing a staging --------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(libc: ctypes.CDLL, a: Path, b: Path) -> None:
    """Swap two names atomically (renameat2 RENAME_EXCHANGE): the path is never missing."""
    if libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(a))


def test_net_staging_race_never_writes_outside_the_root(tmp_path: Path) -> None:
    """Another user swaps etc/sysconfig for a symlink to a directory of theirs, and back, as
    fast as they can while staging runs again and again: nothing ever lands outside."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (outside / "network-scripts").mkdir(parents=True)
    (root / "etc" / "sysconfig" / "network-scripts").mkdir(parents=True)
    swap = root / "etc" / "sysconfig.swap"
    swap.symlink_to(outside)
    model = load_model(NET)
    variants = [dict(render(model)), {rel: (data + b"# again\n", mode)
                                      for rel, (data, mode) in render(model).items()}]
    libc = ctypes.CDLL(None, use_errno=True)
    stop = threading.Event()
    swaps = 0

    def racer() -> None:
        nonlocal swaps
        while not stop.is_set():
            _exchange(libc, root / "etc" / "sysconfig", swap)
            swaps += 1

    thread = threading.Thread(target=racer, daemon=True)
    thread.start()
    tries = refused = 0
    deadline = time.monotonic() + 4
    try:
        while tries < 400 and time.monotonic() < deadline:
            try:
                stage_into_root(variants[tries % 2], root, force=True)
            except InputError:
                refused += 1
            tries += 1
            leaked = [p for p in outside.rglob("*") if p.name != "network-scripts"]
            assert not leaked, f"try {tries}: wrote {leaked}"
    finally:
        stop.set()
        thread.join()
    assert swaps > 100 and refused > 0, (swaps, tries, refused)


def test_net_huge_image_tables_are_refused_unread(tmp_path: Path) -> None:
    """A sparse 64 MiB rt_tables planted in the image: refused, not read into memory."""
    root = tmp_path / "root"
    target = root / rt_tables.RT_TABLES
    target.parent.mkdir(parents=True)
    with open(target, "wb") as fh:
        fh.truncate(64 << 20)
    proc = respin("net", "render", NET, "--root", root, "--rt-tables", "merge", check=False)
    assert_one_line_error(proc, InputError.exit_code, f"{target}: the image's rt_tables is larger than")
