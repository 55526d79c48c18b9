"""newc headers on inline bytes: format, parse, strictness."""

from __future__ import annotations

import stat

import pytest

from respin.stages.initrd.lib import newc
from respin.stages.initrd.lib.newc import HeaderError


def test_format_then_parse_round_trips() -> None:
    raw = newc.format_header(name=b"bin/sh", ino=3, mode=stat.S_IFLNK | 0o777, uid=1, gid=2, nlink=1,
                             mtime=1700000000, filesize=7, rdevmajor=5, rdevminor=1)
    assert len(raw) % 4 == 0
    crc, values = newc.parse_fields(raw[:110])
    header = newc.make_header(crc, values, newc.check_name(raw[110:110 + values[11]]))
    assert (header.name, header.ino, header.kind, header.filesize, header.mtime) == (
        b"bin/sh", 3, "symlink", 7, 1700000000)
    assert (header.rdevmajor, header.rdevminor, header.uid, header.gid) == (5, 1, 1, 2)
    assert not crc


def test_padding_is_relative_to_the_offset() -> None:
    assert len(newc.format_header(name=b"ab", ino=1, mode=0o100644)) == 116
    assert (2 + len(newc.format_header(name=b"ab", ino=1, mode=0o100644, offset=2))) % 4 == 0


def test_trailer() -> None:
    t = newc.trailer()
    assert t.startswith(b"070701") and b"TRAILER!!!\0" in t


@pytest.mark.parametrize(("raw", "needle"), [
    (b"070707" + b"0" * 104, "newc"),
    (b"123456" + b"0" * 104, "bad magic"),
    (b"070701" + b"0000000x" + b"0" * 96, "ino"),
    (b"070701" + b"0" * 40, "truncated"),
])
def test_parse_rejects(raw: bytes, needle: str) -> None:
    with pytest.raises(HeaderError, match=needle):
        newc.parse_fields(raw)


@pytest.mark.parametrize("name", [b"", b"abc", b"a\0b\0", b"\0"])
def test_names_need_exactly_one_trailing_nul(name: bytes) -> None:
    with pytest.raises(HeaderError):
        newc.check_name(name)


def test_values_must_fit() -> None:
    with pytest.raises(ValueError, match="filesize"):
        newc.format_header(name=b"x", ino=1, mode=0o100644, filesize=1 << 32)
