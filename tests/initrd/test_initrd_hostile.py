"""A hostile-archive corpus, generated here (no committed binaries).

Every case must be refused with one clear line (exit 4, no traceback) or safely
contained (exit 0): nothing is ever written outside the target, and a refused
archive leaves no target and no temp dir behind. Default extraction behaves as
unprivileged even as root (no devices, owners or setuid bits), which the cases
named "as_non_root" rely on; a subset also runs as the user nobody.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard
from initrd_util import archive, entry, run_cli, snapshot

from respin.stages.initrd.lib import newc

REG = stat.S_IFREG | 0o644
DIR = stat.S_IFDIR | 0o755
LNK = stat.S_IFLNK | 0o777


@dataclass
class Case:
    name: str
    build: Callable[[Path], bytes]  # gets the "outside" dir, returns the image bytes
    refused: str | None  # a word the error line must contain; None = contained
    check: Callable[[Path], None] | None = None  # extra checks on the target (contained cases)
    args: tuple[str, ...] = ()


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _raw_header(fields: dict[str, int | str], name: bytes = b"x\0", magic: bytes = b"070701") -> bytes:
    order = ["ino", "mode", "uid", "gid", "nlink", "mtime", "filesize", "devmajor", "devminor",
             "rdevmajor", "rdevminor", "namesize", "check"]
    defaults: dict[str, int | str] = {"mode": REG, "nlink": 1, "namesize": len(name)}
    out = magic
    for f in order:
        v = fields.get(f, defaults.get(f, 0))
        out += v.encode() if isinstance(v, str) else b"%08X" % v
    return out + name


def _bomb(kind: str) -> bytes:
    """A 256 MiB file of zeros in an archive, compressed to well under a megabyte."""
    size = 256 << 20
    head = entry("zeros", data=b"", filesize=size)
    block = b"\0" * (8 << 20)
    if kind == "gzip":
        comp = zlib.compressobj(1, zlib.DEFLATED, 31)
        parts = [comp.compress(head)] + [comp.compress(block) for _ in range(size // len(block))]
        parts.append(comp.compress(newc.trailer(offset=len(head) + size)))
        return b"".join(parts) + comp.flush()
    cobj = zstandard.ZstdCompressor(level=1).compressobj()
    parts = [cobj.compress(head)] + [cobj.compress(block) for _ in range(size // len(block))]
    parts.append(cobj.compress(newc.trailer(offset=len(head) + size)))
    return b"".join(parts) + cobj.flush()


def _contains(rel: str, content: bytes | None = None) -> Callable[[Path], None]:
    def check(target: Path) -> None:
        p = target / "main" / rel
        assert p.exists() or p.is_symlink(), rel
        if content is not None:
            assert p.read_bytes() == content
    return check


def _manifest_has(rel: str, key: str) -> Callable[[Path], None]:
    def check(target: Path) -> None:
        import json
        recs = json.loads((target / "initrd-manifest.json").read_text())["trees"]["main"]
        assert key in recs[rel], recs
        assert not (target / "main" / rel).exists()
    return check


def _no_setuid(rel: str) -> Callable[[Path], None]:
    def check(target: Path) -> None:
        import json
        mode = (target / "main" / rel).stat().st_mode
        assert not mode & (stat.S_ISUID | stat.S_ISGID)
        recs = json.loads((target / "initrd-manifest.json").read_text())["trees"]["main"]
        assert recs[rel]["mode"] == "6755"
    return check


def _owner_recorded(rel: str) -> Callable[[Path], None]:
    def check(target: Path) -> None:
        import json
        assert (target / "main" / rel).stat().st_uid != 1234
        recs = json.loads((target / "initrd-manifest.json").read_text())["trees"]["main"]
        assert recs[rel]["uid"] == 1234 and recs[rel]["gid"] == 99
    return check


def _is_fifo(rel: str) -> Callable[[Path], None]:
    def check(target: Path) -> None:
        assert stat.S_ISFIFO((target / "main" / rel).lstat().st_mode)
    return check


def _cases() -> list[Case]:
    c: list[Case] = []
    add = c.append
    add(Case("traversal_dotdot", lambda o: archive(("../evil", {"data": b"x"})), "'..'"))
    add(Case("traversal_nested", lambda o: archive(("a", {"mode": DIR}), ("a/../../evil", {"data": b"x"})),
             "'..'"))
    add(Case("absolute_name_contained", lambda o: archive(("/etc", {"mode": DIR}),
                                                          ("/etc/abs", {"data": b"abs"})),
             None, _contains("etc/abs", b"abs")))
    add(Case("absolute_traversal", lambda o: archive(("/../../tmp/evil", {"data": b"x"})), "'..'"))
    add(Case("absolute_symlink_then_write_through",
             lambda o: archive(("evil", {"mode": LNK, "data": str(o).encode()}),
                               ("evil/pwned", {"data": b"pwned"})), "symlink"))
    add(Case("relative_symlink_up_then_write_through",
             lambda o: archive(("up", {"mode": LNK, "data": b"../../../../../../.."}),
                               ("up/tmp/pwned", {"data": b"pwned"})), "symlink"))
    add(Case("symlink_replaces_dir_then_write_through",
             lambda o: archive(("d", {"mode": DIR}), ("d", {"mode": LNK, "data": str(o).encode()}),
                               ("d/f", {"data": b"pwned"})), "symlink"))
    add(Case("file_replaces_symlink_not_written_through",
             lambda o: archive(("evil", {"mode": LNK, "data": str(o / "victim").encode()}),
                               ("evil", {"data": b"replaced"})),
             None, _contains("evil", b"replaced")))
    add(Case("absolute_symlink_created_verbatim",
             lambda o: archive(("lib64", {"mode": LNK, "data": b"/lib"})), None, _contains("lib64")))
    add(Case("hardlink_after_symlink_swap",
             lambda o: archive(("a", {"ino": 7, "nlink": 2, "data": b""}),
                               ("a", {"mode": LNK, "data": str(o / "victim").encode()}),
                               ("b", {"ino": 7, "nlink": 2, "data": b"pwned"})), "no longer a file"))
    add(Case("hardlink_traversal_name",
             lambda o: archive(("a", {"ino": 5, "nlink": 2}), ("../b", {"ino": 5, "nlink": 2, "data": b"x"})),
             "'..'"))
    add(Case("hardlink_through_symlinked_parent",
             lambda o: archive(("d", {"mode": DIR}), ("d/f", {"ino": 9, "nlink": 2}),
                               ("d", {"mode": LNK, "data": str(o).encode()}),
                               ("g", {"ino": 9, "nlink": 2, "data": b"pwned"})), "symlink"))
    add(Case("char_device_as_non_root_recorded_not_created",
             lambda o: archive(("dev", {"mode": DIR}),
                               ("dev/console", {"mode": stat.S_IFCHR | 0o600, "rdev": (5, 1)})),
             None, _manifest_has("dev/console", "rdev")))
    add(Case("block_device_as_non_root_recorded_not_created",
             lambda o: archive(("sda", {"mode": stat.S_IFBLK | 0o660, "rdev": (8, 0)})),
             None, _manifest_has("sda", "rdev")))
    add(Case("setuid_as_non_root_dropped_and_recorded",
             lambda o: archive(("su", {"mode": stat.S_IFREG | 0o6755, "data": b"#!x"})),
             None, _no_setuid("su")))
    add(Case("foreign_owner_as_non_root_recorded",
             lambda o: archive(("owned", {"uid": 1234, "gid": 99, "data": b"x"})),
             None, _owner_recorded("owned")))
    add(Case("absurd_filesize", lambda o: entry("big", data=b"0123456789", filesize=0xFFFFFFFF), "truncated"))
    add(Case("absurd_namesize", lambda o: _raw_header({"namesize": 0xFFFFFFFF}), "namesize"))
    add(Case("zero_namesize", lambda o: _raw_header({"namesize": 0}, name=b""), "namesize"))
    add(Case("name_without_nul", lambda o: _raw_header({"namesize": 4}, name=b"abcd") + b"\0" * 8, "NUL"))
    add(Case("non_hex_field", lambda o: _raw_header({"filesize": "0000000G"}) + b"\0" * 8, "hex"))
    add(Case("signed_field", lambda o: _raw_header({"mtime": "-0000001"}) + b"\0" * 8, "hex"))
    add(Case("truncated_header", lambda o: archive(("a", {"data": b"x"}))[:60], "truncated"))
    add(Case("truncated_data", lambda o: entry("a", data=b"y" * 1000)[:600], "truncated"))
    add(Case("truncated_gzip_member", lambda o: _gz(archive(("a", {"data": os.urandom(5000)})))[:2000],
             "truncated"))
    add(Case("odc_magic", lambda o: b"070707" + b"0" * 200, "newc"))
    add(Case("bad_magic", lambda o: b"hello, this is no initrd\n" * 4, "neither"))
    add(Case("junk_after_compressed_member",
             lambda o: _gz(archive(("a", {"data": b"x"}))) + b"JUNKJUNKJUNK", "neither"))
    add(Case("junk_inside_compressed_member",
             lambda o: _gz(archive(("a", {"data": b"x"})) + b"garbage after the trailer"), "junk"))
    add(Case("compressed_inside_compressed", lambda o: _gz(_gz(archive(("a", {"data": b"x"})))), "junk"))
    add(Case("gzip_bomb_size_limit", lambda o: _gz_bomb(), "size limit", args=("--max-size", "64M")))
    add(Case("zstd_bomb_size_limit", lambda o: _zstd_bomb(), "size limit", args=("--max-size", "64M")))
    add(Case("xz_crc_corrupt", lambda o: _corrupt_xz(), "corrupt"))
    add(Case("crc_sum_mismatch",
             lambda o: archive(("a", {"data": b"abc", "crc": True, "check": 1})), "crc sum"))
    add(Case("symlink_target_too_long",
             lambda o: archive(("l", {"mode": LNK, "data": b"a" * 5000})), "symlink target"))
    add(Case("symlink_target_with_nul",
             lambda o: archive(("l", {"mode": LNK, "data": b"/etc\0/x"})), "NUL"))
    add(Case("directory_with_data", lambda o: archive(("d", {"mode": DIR, "data": b"xx"})), "data"))
    add(Case("unknown_file_type", lambda o: archive(("u", {"mode": 0o170644})), "file type"))
    add(Case("trailer_with_data", lambda o: entry("TRAILER!!!", data=b"boo"), "TRAILER"))
    add(Case("name_over_path_max", lambda o: archive(("a" * 5000, {"data": b"x"})), "PATH_MAX"))
    add(Case("root_entry_not_a_dir", lambda o: archive((".", {"data": b"x"})), "root"))
    add(Case("all_zero_image", lambda o: b"\0" * 4096, "empty image"))
    add(Case("messy_name_normalised", lambda o: archive(("a", {"mode": DIR}), ("a//./b", {"data": b"b"})),
             None, _contains("a/b", b"b")))
    add(Case("fifo_created_inside", lambda o: archive(("p", {"mode": stat.S_IFIFO | 0o644})),
             None, _is_fifo("p")))
    return c


_BOMBS: dict[str, bytes] = {}


def _gz_bomb() -> bytes:
    if "gzip" not in _BOMBS:
        _BOMBS["gzip"] = _bomb("gzip")
    return _BOMBS["gzip"]


def _zstd_bomb() -> bytes:
    if "zstd" not in _BOMBS:
        _BOMBS["zstd"] = _bomb("zstd")
    return _BOMBS["zstd"]


def _corrupt_xz() -> bytes:
    data = bytearray(lzma.compress(archive(("a", {"data": b"hello" * 1000})), check=lzma.CHECK_CRC32))
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


CASES = _cases()


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({c.name for c in CASES}) == len(CASES)


def _layout(tmp_path: Path) -> tuple[Path, Path, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("untouched\n")
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    return outside, sandbox, sandbox / "target"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_archive(tmp_path: Path, case: Case) -> None:
    outside, sandbox, target = _layout(tmp_path)
    image = tmp_path / "hostile.img"
    image.write_bytes(case.build(outside))
    before = snapshot(outside)
    code, _out, err = run_cli("extract", image, target, *case.args)
    assert "Traceback" not in err
    assert snapshot(outside) == before, "something was written outside the target"
    if case.refused is None:
        assert code == 0, err
        assert sorted(p.name for p in sandbox.iterdir()) == ["target"]
        assert case.check is not None
        case.check(target)
        # Every symlink made is inside the target and nothing was created through one.
        for p in target.rglob("*"):
            assert p.is_symlink() or p.resolve().is_relative_to(target.resolve())
    else:
        lines = [ln for ln in err.splitlines() if ln.startswith("respin: error:")]
        assert code == 4, (code, err)
        assert len(lines) == 1 and str(image) in lines[0], err
        assert case.refused in lines[0], lines[0]
        assert list(sandbox.iterdir()) == [], "a refused archive left something behind"
    # list and check read the same bytes without a traceback either: damaged archives are
    # bad input (4); well-formed but unsafe ones list fine and fail the check (8).
    for cmd in ("list", "check"):
        code2, _, err2 = run_cli(cmd, image, *case.args)
        assert "Traceback" not in err2
        assert code2 in ((0, 4) if cmd == "list" else (0, 4, 8)), err2
        assert len([ln for ln in err2.splitlines() if ln.startswith("respin: error:")]) == (code2 != 0)


def test_refused_archive_leaves_an_earlier_extraction_untouched(tmp_path: Path) -> None:
    _outside, sandbox, target = _layout(tmp_path)
    good = tmp_path / "good.img"
    good.write_bytes(archive(("keep", {"data": b"keep me"})))
    assert run_cli("extract", good, target)[0] == 0
    before = snapshot(target)
    bad = tmp_path / "bad.img"
    bad.write_bytes(archive(("fine", {"data": b"x"}), ("../evil", {"data": b"x"})))
    code, _, err = run_cli("extract", bad, target)
    assert code == 4 and "'..'" in err
    assert snapshot(target) == before
    assert sorted(p.name for p in sandbox.iterdir()) == ["target"]


def test_extract_refuses_a_non_empty_foreign_directory(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "precious").write_text("data")
    image = tmp_path / "a.img"
    image.write_bytes(archive(("a", {"data": b"x"})))
    code, _, err = run_cli("extract", image, target)
    assert code == 2 and "not empty" in err
    assert (target / "precious").read_text() == "data"


def test_bad_max_size_is_a_config_error(tmp_path: Path) -> None:
    image = tmp_path / "a.img"
    image.write_bytes(archive(("a", {"data": b"x"})))
    code, _, err = run_cli("list", image, "--max-size", "lots")
    assert code == 3 and "--max-size" in err


def _nobody_can_run() -> bool:
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return False
    probe = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            sys.executable, "-c", "import respin.stages.initrd.lib.unpack"],
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
                           capture_output=True, check=False)
    return probe.returncode == 0


NON_ROOT = ["absolute_symlink_then_write_through", "hardlink_after_symlink_swap",
            "char_device_as_non_root_recorded_not_created", "setuid_as_non_root_dropped_and_recorded",
            "foreign_owner_as_non_root_recorded", "traversal_dotdot",
            "symlink_replaces_dir_then_write_through"]


@pytest.mark.root
@pytest.mark.skipif(not _nobody_can_run(), reason="needs root to drop to the user nobody with setpriv")
def test_hostile_subset_as_non_root_user_nobody(tmp_path: Path) -> None:
    """The same cases, really unprivileged: setpriv drops to nobody in a subprocess."""
    base = Path(tempfile.mkdtemp(prefix="respin-nobody-"))
    try:
        base.chmod(0o777)
        for case in [c for c in CASES if c.name in NON_ROOT]:
            work = base / case.name
            work.mkdir()
            work.chmod(0o777)
            outside, sandbox, target = _layout(work)
            sandbox.chmod(0o777)
            image = work / "hostile.img"
            image.write_bytes(case.build(outside))
            image.chmod(0o644)
            before = snapshot(outside)
            code = ("import sys\nfrom pathlib import Path\nfrom respin.stages.initrd.cli import register\n"
                    "import argparse\np = argparse.ArgumentParser(); register(p.add_subparsers())\n"
                    "from respin.pipeline.errors import RespinError\n"
                    "a = p.parse_args(['initrd', 'extract', sys.argv[1], sys.argv[2]])\n"
                    "try:\n    sys.exit(a.func(a))\n"
                    "except RespinError as e:\n    print('respin: error:', e, file=sys.stderr); "
                    "sys.exit(e.exit_code)\n")
            proc = subprocess.run(
                ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c",
                 code, str(image), str(target)],
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
                capture_output=True, text=True, check=False)
            assert "Traceback" not in proc.stderr, proc.stderr
            assert snapshot(outside) == before
            if case.refused is None:
                assert proc.returncode == 0, proc.stderr
                assert case.check is not None
                case.check(target)
                owners = {p.lstat().st_uid for p in target.rglob("*")}
                assert owners == {65534}
            else:
                assert proc.returncode == 4, proc.stderr
                assert list(sandbox.iterdir()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)
