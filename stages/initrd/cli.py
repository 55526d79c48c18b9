"""`respin initrd ...`: list, cat, extract, pack and check initrd images.

Handlers write results to stdout, warnings to stderr, and raise pipeline
errors for problems; the main CLI turns those into one line and an exit code.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from typing import IO, TYPE_CHECKING, BinaryIO

from respin.pipeline.errors import CheckFailed, ConfigError, InputError
from respin.stages.initrd.lib import newc
from respin.stages.initrd.lib.codecs import DEFAULT_LEVEL, PACK_COMPRESSIONS
from respin.stages.initrd.lib.reader import ImageReader, parse_count, parse_size

if TYPE_CHECKING:
    from respin.stages.initrd.lib.tree import ImageTree

# check, extract and writer are imported by the commands that use them: deferred,
# pipeline/startup.py.

def _warn(lines: list[str]) -> None:
    for line in lines:
        sys.stderr.write(f"respin: warning: {line}\n")


def _out() -> BinaryIO:
    return sys.stdout.buffer


def _mode_string(mode: int) -> str:
    return stat.filemode(mode)


def cmd_list(args: argparse.Namespace) -> int:
    """List every entry of every part (or, with --parts, the parts)."""
    # Headers only (and symlink targets): no decompression thread, see ImageReader.
    reader = ImageReader(args.image, max_size=parse_size(args.max_size),
                         max_entries=parse_count(args.max_entries), prefetch=False)
    out = _out()
    if args.parts:
        reader.summary()
        out.write(b"part offset end compression format archives entries size\n")
        for p in reader.parts:
            comp = p.compression + (f"({p.detail})" if p.detail else "")
            out.write(f"{p.index} {p.offset} {p.end} {comp} {p.format} {p.archives} {p.entries} "
                      f"{p.size}\n".encode())
    else:
        for entry in reader.entries():
            name = entry.name
            if args.long:
                h = entry.header
                when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(h.mtime))
                size = f"{h.rdevmajor},{h.rdevminor}" if entry.kind in ("chr", "blk") else str(h.filesize)
                line = (f"{_mode_string(h.mode)} {h.nlink:3d} {h.uid:5d} {h.gid:5d} {size:>10} {when} "
                        f"{entry.part} ").encode() + name
                if entry.kind == "symlink":
                    line += b" -> " + reader.read_all(newc.SYMLINK_MAX)
                out.write(line + b"\n")
            else:
                out.write(name + b"\n")
    out.flush()
    _warn(reader.warnings)
    return 0


def _spool(reader: ImageReader, want: list[str], spool: IO[bytes], tree: ImageTree | None) -> str | None:
    """Walk the image: copy the data of the file at `want` (as the last entry of that name
    leaves it) into `spool`, record every entry in `tree`; the kind found at `want`, if any."""
    from respin.stages.initrd.lib.unpack import Refused, split_name

    found_kind: str | None = None
    link_key: tuple[int, int, int, int] | None = None
    for entry in reader.entries():
        try:
            comps, _ = split_name(entry.name)
        except Refused:
            continue
        key = (entry.archive, *entry.header.link_key)
        same = comps == want
        target: str | None = None
        if entry.kind == "symlink" and (tree is not None or same):
            target = os.fsdecode(reader.read_all(newc.SYMLINK_MAX))
        # The kernel skips an entry whose parent directory is not there (yet).
        if tree is not None and comps and (len(comps) == 1 or tree.kinds.get("/".join(comps[:-1])) == "dir"):
            tree.add("/".join(comps), entry.kind, entry.header.mode, target)
        # A hardlinked name may carry no data; its data comes with another name.
        joined = link_key == key and entry.kind == "file" and entry.size > 0
        if not same and not joined:
            continue
        if same:
            found_kind = entry.kind
            link_key = key if entry.kind == "file" and entry.header.nlink > 1 else None
        if entry.kind == "file" and (entry.size or same):
            spool.seek(0)
            spool.truncate()
            for chunk in reader.chunks():
                spool.write(chunk)
    return found_kind


def cmd_cat(args: argparse.Namespace) -> int:
    """Write one file's content, as the kernel would leave it, to stdout.

    Symlinks on the way (bin -> usr/bin, sh -> bash) are followed inside the image; the
    path read then goes to stderr, so stdout holds the file's bytes alone.
    """
    import tempfile  # only `cat` spools

    from respin.stages.initrd.lib.tree import ImageTree, Unresolved
    from respin.stages.initrd.lib.unpack import Refused, split_name

    try:
        want, _ = split_name(os.fsencode(args.path))
    except Refused as exc:
        raise InputError(f"path '{args.path}' {exc}") from None
    if not want:
        raise InputError(f"{args.image}: '{args.path}' is the image's root directory, not a file")
    max_size = parse_size(args.max_size)
    max_entries = parse_count(args.max_entries)
    wanted = "/".join(want)
    tree = ImageTree()
    with tempfile.SpooledTemporaryFile(max_size=8 << 20) as spool:
        # One walk reads the path as named and learns the tree; only a path that goes
        # through a symlink needs a second walk, for the file it leads to.
        found = _spool(ImageReader(args.image, max_size=max_size, max_entries=max_entries), want,
                       spool, tree)
        try:
            real, followed = tree.resolve(wanted)
        except Unresolved as exc:
            if exc.followed or exc.path != wanted:
                raise InputError(f"{args.image}: '{args.path}': {exc}") from None
            raise InputError(f"{args.image}: no entry '{args.path}'") from None
        if real != wanted:
            sys.stderr.write(f"respin: reading '{real}' for '{args.path}' ({', '.join(followed)})\n")
            found = _spool(ImageReader(args.image, max_size=max_size, max_entries=max_entries),
                           real.split("/"),
                           spool, None)
        if found != "file":
            shown = args.path if real == wanted else f"{args.path}' -> '{real}"
            raise InputError(f"{args.image}: '{shown}' is a {found}, not a file")
        spool.seek(0)
        out = _out()
        while chunk := spool.read(1 << 20):
            out.write(chunk)
        out.flush()
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    """Extract every part safely into DIR/main (and DIR/early) with a manifest."""
    from pathlib import Path  # deferred: pipeline/startup.py

    from respin.stages.initrd.lib.unpack import extract

    result = extract(Path(args.image), Path(args.dir), privileged=args.privileged,
                     max_size=parse_size(args.max_size), max_entries=parse_count(args.max_entries),
                     force=args.force)
    _warn(result.warnings)
    trees = ", ".join(f"{args.dir}/{t}" for t in result.trees)
    _out().write(f"extracted {result.entries} entries from {len(result.parts)} part(s) into {trees}\n"
                 .encode())
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    """Pack DIR (a plain tree or an extraction) into a reproducible image."""
    from pathlib import Path

    from respin.stages.initrd.lib.writer import pack

    result = pack(Path(args.dir), Path(args.output), compress=args.compress, level=_level(args.level),
                  early=Path(args.early) if args.early else None)
    _warn(result.warnings)
    early = f" + {result.early_entries} early" if args.early or result.early_entries else ""
    level = f" -{result.level}" if result.compression != "none" else ""
    if result.dict_size:
        level += f" (dictionary {result.dict_size >> 10} KiB)"
    kept = ", as the extracted image" if result.kept else ""
    _out().write(f"wrote {result.output}: {result.compression}{level}{kept}, {result.entries} entries"
                 f"{early}, {result.size} bytes\n".encode())
    return 0


def _level(text: str | None) -> int | None:
    """`--level`: a bad value is a bad value (exit 3), as for every option value here, not
    argparse's usage error (its range is checked against the compression by pack)."""
    if text is None:
        return None
    if not text.strip().isdigit() or not text.isascii():
        raise ConfigError(f"--level {text!r}: want a whole number, such as 9")
    return int(text)


def cmd_check(args: argparse.Namespace) -> int:
    """Report what would go wrong booting the image; CheckFailed if anything would."""
    from pathlib import Path

    from respin.stages.initrd.lib.check import check_image

    findings = check_image(Path(args.image), root=args.root,
                           kernel_config=Path(args.kernel_config) if args.kernel_config else None,
                           max_size=parse_size(args.max_size),
                           max_entries=parse_count(args.max_entries))
    out = _out()
    for finding in findings:
        out.write(f"{finding}\n".encode())
    out.flush()
    problems = sum(f.level == "problem" for f in findings)
    if problems:
        # The problems are on stdout above, each once; this line only says the check failed.
        raise CheckFailed(f"{args.image}: {problems} problem{'s' if problems > 1 else ''} found "
                          "(the 'problem:' lines above)")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `initrd` and its sub-commands to the main CLI's sub-parsers."""
    parser = sub.add_parser("initrd", help="inspect, extract, modify and repack initrd images",
                            description="Inspect, extract and repack initrd images: every part, "
                            "as the kernel reads them.")
    # These commands write their warnings themselves: the CLI need not set up logging.
    parser.set_defaults(logs=False)
    cmds = parser.add_subparsers(dest="initrd_command", metavar="COMMAND", required=True)

    def size_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--max-size", metavar="SIZE",
                       help="stop when the image decompresses to more than SIZE (default 4G)")
        p.add_argument("--max-entries", metavar="N",
                       help="stop when the image holds more than N entries (default 1000000)")

    p = cmds.add_parser("list", help="list the parts and every entry")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--parts", action="store_true",
                   help="list the parts (offset, compression, format) instead of entries")
    p.add_argument("--long", action="store_true", help="mode, links, owner, size, mtime, part, name")
    size_opt(p)
    p.set_defaults(func=cmd_list)

    p = cmds.add_parser("cat", help="write one file's content to stdout")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("path", metavar="PATH")
    size_opt(p)
    p.set_defaults(func=cmd_cat)

    p = cmds.add_parser("extract", help="extract every part safely (no root needed)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("dir", metavar="DIR", help="new directory (or an unchanged earlier extraction): "
                   "gets main/, early/, the manifest and the record of what was written")
    p.add_argument("--privileged", action="store_true",
                   help="create device nodes, set owners and setuid/setgid bits (root only)")
    p.add_argument("--force", action="store_true",
                   help="replace DIR, an earlier extraction, even if it was changed since (without "
                   "it, a changed one is refused; a directory extract did not make is never replaced)")
    size_opt(p)
    p.set_defaults(func=cmd_extract)

    p = cmds.add_parser("pack", help="pack a tree into a reproducible image")
    p.add_argument("dir", metavar="DIR", help="a tree, or a directory `extract` made")
    p.add_argument("-o", "--output", required=True, metavar="IMAGE")
    p.add_argument("--compress", choices=PACK_COMPRESSIONS,
                   help="compression (default: for a directory `extract` made, the image's own, "
                   "with the level extract recorded for it; for a plain tree, gzip)")
    p.add_argument("--level", metavar="N",
                   help="compression level (default: the extracted image's when packing with its "
                   "compression, e.g. zstd -9 for a Debian mkinitramfs image; otherwise "
                   + ", ".join(f"{n} {DEFAULT_LEVEL[n]}" for n in PACK_COMPRESSIONS if n != "none")
                   + ")")
    p.add_argument("--early", metavar="DIR", help="tree to put first as an uncompressed archive")
    p.set_defaults(func=cmd_pack)

    p = cmds.add_parser("check", help="root device and kernel-compatibility checks")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--root", metavar="DEV", help="the root device the image must name")
    p.add_argument("--kernel-config", metavar="FILE",
                   help="kernel .config whose CONFIG_RD_* the compressions must match")
    size_opt(p)
    p.set_defaults(func=cmd_check)
