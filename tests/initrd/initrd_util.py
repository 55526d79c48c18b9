"""Helpers shared by the initrd tests: trees, raw archives, real tools, the CLI in-process."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import stat
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

from respin.pipeline.errors import RespinError
from respin.stages.initrd import cli
from respin.stages.initrd.lib import newc

EPOCH = 1_700_000_000


def make_tree(root: Path) -> Path:
    """A small tree with what real initrds have: dirs, executables, absolute and relative
    symlinks, hardlinks, an empty file, odd names."""
    root.mkdir(parents=True, exist_ok=True)
    for d in ("bin", "etc", "lib/modules/6.1.0", "usr/lib", "empty-dir", "run"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "init").write_text("#!/bin/sh\necho hello\n")
    (root / "init").chmod(0o755)
    (root / "bin/tool").write_bytes(bytes(range(256)) * 300 + b"tail")
    (root / "bin/tool").chmod(0o755)
    (root / "etc/fstab").write_text("/dev/sda1 / ext4 defaults 0 1\n")
    (root / "etc/empty").write_bytes(b"")
    (root / "etc/with space é").write_text("odd name\n")
    (root / "lib/modules/6.1.0/mod.ko").write_bytes(os.urandom(5000))
    os.link(root / "bin/tool", root / "usr/lib/tool-hardlink")
    os.link(root / "bin/tool", root / "bin/tool2")
    (root / "bin/sh").symlink_to("tool")
    (root / "lib64").symlink_to("/lib")
    (root / "etc/mtab").symlink_to("/proc/self/mounts")
    (root / "etc/ro").write_text("read only\n")
    (root / "etc/ro").chmod(0o444)
    for p in sorted(root.rglob("*"), reverse=True):
        os.utime(p, (EPOCH - 100, EPOCH - 100), follow_symlinks=False)
    return root


def entry(name: bytes | str, *, mode: int = stat.S_IFREG | 0o644, data: bytes = b"", ino: int = 1,
          nlink: int = 1, uid: int = 0, gid: int = 0, mtime: int = EPOCH, rdev: tuple[int, int] = (0, 0),
          offset: int = 0, filesize: int | None = None, crc: bool = False, check: int = 0) -> bytes:
    """One raw newc entry (header, name, data, padding); `offset` is where it starts."""
    if isinstance(name, str):
        name = name.encode()
    size = len(data) if filesize is None else filesize
    head = newc.format_header(name=name, ino=ino, mode=mode, uid=uid, gid=gid, nlink=nlink, mtime=mtime,
                              filesize=size, rdevmajor=rdev[0], rdevminor=rdev[1], offset=offset,
                              crc=crc, check=check)
    return head + data + b"\0" * newc.pad4(len(data))


def archive(*entries: tuple[bytes | str, dict[str, object]], trailer: bool = True) -> bytes:
    """An archive from (name, fields) pairs, offsets handled."""
    out = b""
    for name, fields in entries:
        out += entry(name, offset=len(out), **fields)  # type: ignore[arg-type]
    if trailer:
        out += newc.trailer(offset=len(out))
    return out


def tool(name: str) -> str | None:
    """Path of an installed tool, or None."""
    return shutil.which(name)


def sh(cmd: str, cwd: Path | None = None, stdin: bytes | None = None) -> bytes:
    """Run a shell pipeline (tests only) and return stdout; fail loudly on error."""
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=cwd, input=stdin,
                          capture_output=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Path -> (kind, permission bits, content or link target), for comparing trees."""
    out: dict[str, tuple[str, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", 0, os.fsencode(os.readlink(p)))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), b"")
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", stat.S_IMODE(st.st_mode), p.read_bytes())
            else:
                out[rel] = ("other", stat.S_IMODE(st.st_mode), b"")
    return out


def inodes(root: Path) -> set[frozenset[str]]:
    """Groups of names sharing an inode (hardlinks), as sets."""
    groups: dict[int, set[str]] = {}
    for p in root.rglob("*"):
        st = p.lstat()
        if stat.S_ISREG(st.st_mode):
            groups.setdefault(st.st_ino, set()).add(str(p.relative_to(root)))
    return {frozenset(g) for g in groups.values() if len(g) > 1}


def parser() -> argparse.ArgumentParser:
    """A stand-in for the main CLI's parser, with only the initrd commands."""
    p = argparse.ArgumentParser(prog="respin")
    sub = p.add_subparsers(dest="command")
    cli.register(sub)
    return p


@contextlib.contextmanager
def _captured() -> Iterator[tuple[io.BytesIO, io.BytesIO]]:
    out, err = io.BytesIO(), io.BytesIO()
    old = sys.stdout, sys.stderr
    sys.stdout = io.TextIOWrapper(out, write_through=True)
    sys.stderr = io.TextIOWrapper(err, write_through=True)
    try:
        yield out, err
    finally:
        for wrapper in (sys.stdout, sys.stderr):
            wrapper.flush()
            wrapper.detach()
        sys.stdout, sys.stderr = old


def run_cli(*argv: str | os.PathLike[str]) -> tuple[int, bytes, str]:
    """Run `respin initrd ...` in-process: (exit code, stdout bytes, stderr text).

    Errors become the code and one `respin: error:` line, as the main CLI does.
    """
    args = parser().parse_args(["initrd", *map(str, argv)])
    with _captured() as (out, err):
        try:
            code = int(args.func(args))
        except RespinError as exc:
            sys.stderr.write(f"respin: error: {exc.message}\n")
            code = exc.exit_code
    return code, out.getvalue(), err.getvalue().decode()


def respin_has_initrd() -> bool:
    """True once the installed `respin` command knows `initrd` (its entry point is registered)."""
    exe = Path(sys.executable).with_name("respin")
    if not exe.exists():
        return False
    proc = subprocess.run([str(exe), "initrd", "--help"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    return proc.returncode == 0


def many_files_image(path: Path, count: int) -> Path:
    """An image of `count` empty files in one directory (an entry-count bomb, at any size),
    gzip -1: a million entries compress to a few megabytes."""
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    with open(path, "wb") as fh:
        pos = 0
        batch: list[bytes] = []

        def put(data: bytes) -> None:
            nonlocal pos
            batch.append(data)
            pos += len(data)

        put(newc.format_header(name=b"d", ino=1, mode=stat.S_IFDIR | 0o755, nlink=2, offset=pos))
        for i in range(count):
            put(newc.format_header(name=b"d/%07d" % i, ino=i + 2, mode=stat.S_IFREG | 0o644, offset=pos))
            if len(batch) >= 4096:
                fh.write(comp.compress(b"".join(batch)))
                batch.clear()
        put(newc.trailer(offset=pos))
        fh.write(comp.compress(b"".join(batch)) + comp.flush())
    return path
