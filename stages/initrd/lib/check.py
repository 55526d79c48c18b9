"""`check`: what would go wrong when the kernel unpacks and runs this image.

Before anyone boots it: compressions the kernel cannot read (xz with CRC64,
lz4 frame format), entries whose parent directory comes later or never (the
kernel skips them), an /init that cannot run, and the root device: a nash
`mkrootdev` line in the init script, `root=` in dracut's etc/cmdline.d, the
`/` line of etc/fstab, which must exist where the init needs one and agree.
A missing one is what ends in "mount: error mounting /dev/root on /sysroot".
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shlex
import zlib
from dataclasses import dataclass
from pathlib import Path

from respin.pipeline.errors import InputError
from respin.stages.initrd.lib import newc
from respin.stages.initrd.lib.codecs import CONFIG_RD, NOT_BOOTABLE
from respin.stages.initrd.lib.reader import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_SIZE, ImageReader
from respin.stages.initrd.lib.tree import ImageTree, Unresolved
from respin.stages.initrd.lib.unpack import Refused, split_name

# Files whose content the check reads (bounded: init scripts and config are small).
_CAPTURE_MAX = 1 << 20
# A .config is about 250 KB; anything far bigger is something else.
_CONFIG_MAX = 16 << 20
_CONFIG_LINE = re.compile(r"^(?:(?P<set>CONFIG_(?:BLK_DEV_INITRD|RD_\w+))=(?P<value>\S*)"
                          r"|# (?P<unset>CONFIG_(?:BLK_DEV_INITRD|RD_\w+)) is not set)\s*$", re.M)


@dataclass
class Finding:
    """One line of the report: level is "ok", "note" or "problem"."""

    level: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


def _wanted(path: str) -> bool:
    return (path in ("init", "linuxrc", "etc/fstab", "etc/cmdline")
            or (path.startswith("etc/cmdline.d/") and path.endswith(".conf")))


def _scan(reader: ImageReader) -> tuple[ImageTree, list[Finding]]:
    view = ImageTree()
    findings: list[Finding] = []
    orphans = 0
    for entry in reader.entries():
        try:
            comps, _absolute = split_name(entry.name)
        except Refused as exc:
            findings.append(Finding("problem", f"entry '{os.fsdecode(entry.name)}' {exc}"))
            continue
        if not comps:
            continue
        path = "/".join(comps)
        parent = "/".join(comps[:-1])
        if parent and view.kinds.get(parent) != "dir":
            orphans += 1
            if orphans <= 5:
                findings.append(Finding(
                    "problem", f"'{path}' comes before its parent directory '{parent}' exists; "
                    "the kernel does not create parents and will skip it"))
            continue
        target = os.fsdecode(reader.read_all(newc.SYMLINK_MAX)) if entry.kind == "symlink" else None
        view.add(path, entry.kind, entry.header.mode, target)
        if entry.kind == "file" and _wanted(path) and entry.size <= _CAPTURE_MAX:
            view.files[path] = reader.read_all(_CAPTURE_MAX)
    if orphans > 5:
        findings.append(Finding("problem", f"{orphans} entries in all come before their parent directory"))
    return view, findings


def read_kernel_config(path: Path) -> dict[str, bool]:
    """CONFIG_BLK_DEV_INITRD and CONFIG_RD_* of a kernel .config (or a gzipped one, as
    /proc/config.gz): True when =y, False when "is not set" or another value.

    InputError, naming the file, when it is not a kernel config at all.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(_CONFIG_MAX + 1)
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
                data = gz.read(_CONFIG_MAX + 1)
        except (OSError, EOFError, zlib.error):
            raise InputError(f"{path}: not a kernel config (damaged gzip data)") from None
    if len(data) > _CONFIG_MAX or b"\0" in data:
        raise InputError(f"{path}: not a kernel config (binary data)")
    found: dict[str, bool] = {}
    for m in _CONFIG_LINE.finditer(data.decode(errors="replace")):
        name = m.group("set") or m.group("unset")
        found[name] = m.group("value") == "y"
    # Every real .config names these; a file that names none cannot answer the question.
    if not found:
        raise InputError(f"{path}: not a kernel config (no CONFIG_BLK_DEV_INITRD or CONFIG_RD_* line)")
    return found


def _parts(reader: ImageReader, config: dict[str, bool] | None) -> list[Finding]:
    findings: list[Finding] = []
    enabled = None if config is None else {name for name, on in config.items() if on}
    if config is not None and config.get("CONFIG_BLK_DEV_INITRD") is False:
        findings.append(Finding("problem", "the kernel config has no initrd support "
                                "(CONFIG_BLK_DEV_INITRD is not set)"))
    for part in reader.parts:
        where = f"part {part.index} at offset {part.offset} ({part.compression})"
        if part.compression in NOT_BOOTABLE:
            findings.append(Finding("problem", f"{where}: {NOT_BOOTABLE[part.compression]}"))
        elif part.compression == "xz" and part.detail not in ("check=crc32", "check=none"):
            check = part.detail.partition("=")[2].upper() or "an unknown"
            findings.append(Finding("problem", f"{where}: xz with a {check} check, which the kernel "
                                    "cannot verify (write it with xz --check=crc32)"))
        elif enabled is not None and part.compression in CONFIG_RD \
                and CONFIG_RD[part.compression] not in enabled:
            findings.append(Finding("problem", f"{where}: the kernel config lacks "
                                    f"{CONFIG_RD[part.compression]}=y"))
        else:
            findings.append(Finding("ok", f"{where}: {part.format}, {part.entries} entries, "
                                    "readable by the kernel"))
    return findings


def _mkrootdev(script: str) -> list[tuple[str | None, str | None]]:
    """(device, fstype) of every `mkrootdev` line in a nash script."""
    found: list[tuple[str | None, str | None]] = []
    for line in script.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("mkrootdev"):
            continue
        try:
            words = shlex.split(line)[1:]
        except ValueError:
            words = line.split()[1:]
        fstype = device = None
        i = 0
        while i < len(words):
            if words[i] in ("-t", "-o") and i + 1 < len(words):
                if words[i] == "-t":
                    fstype = words[i + 1]
                i += 2
                continue
            device = words[i]
            i += 1
        found.append((device, fstype))
    return found


Source = tuple[str, str, str | None]  # where it is said, the root device, its fstype


def _root_device(view: ImageTree, expected: str | None) -> list[Finding]:
    findings: list[Finding] = []
    sources: list[Source] = []
    for found in (_from_init_script(view), _from_cmdline(view), _from_fstab(view)):
        findings += found[0]
        sources += found[1]
    findings += _disagreements(sources, expected)
    devices = sorted({dev for _, dev, _ in sources})
    if len(devices) == 1 and not any(f.level == "problem" for f in findings):
        found_in = ", ".join(where for where, _, _ in sources)
        findings.append(Finding("ok", f"root device {devices[0]} ({found_in})"))
    elif not sources and not findings:
        if expected is not None:
            # Nothing to hold --root against: saying "ok" would claim a check never made.
            findings.append(Finding("problem", f"--root {expected}: the image names no root device "
                                    "(no nash mkrootdev, no root= in etc/cmdline.d, no / in etc/fstab), "
                                    "so it cannot be checked; the kernel command line's root= decides"))
        else:
            findings.append(Finding("note", "the image names no root device; the kernel command line "
                                    "must give root="))
    return findings


def _from_init_script(view: ImageTree) -> tuple[list[Finding], list[Source]]:
    """What a nash /init (or /linuxrc) says with mkrootdev."""
    findings: list[Finding] = []
    sources: list[Source] = []
    init_path = "init" if "init" in view.kinds else ("linuxrc" if "linuxrc" in view.kinds else None)
    script = view.files.get(init_path or "", b"").decode(errors="replace")
    nash = script.startswith("#!") and "nash" in script.splitlines()[0]
    for device, fstype in _mkrootdev(script):
        if not device:
            findings.append(Finding("problem", f"{init_path}: mkrootdev without a device"))
        elif device == "/dev/root":
            findings.append(Finding("problem", f"{init_path}: mkrootdev /dev/root names the device it "
                                    "is supposed to create"))
        else:
            sources.append((f"{init_path} mkrootdev", device, fstype))
    if nash and re.search(r"^\s*mount\s+/sysroot", script, re.M) and not _mkrootdev(script):
        findings.append(Finding("problem", f"{init_path} mounts /sysroot but has no mkrootdev line: "
                                "boot ends in 'mount: error mounting /dev/root on /sysroot'"))
    return findings, sources


def _from_cmdline(view: ImageTree) -> tuple[list[Finding], list[Source]]:
    """What the image's etc/cmdline* files say with root=."""
    findings: list[Finding] = []
    sources: list[Source] = []
    for path in sorted(p for p in view.files if p.startswith("etc/cmdline")):
        for word in view.files[path].decode(errors="replace").split():
            if word.startswith("root="):
                value = word[len("root="):]
                if not value:
                    findings.append(Finding("problem", f"{path}: empty root="))
                else:
                    sources.append((f"{path} root=", value, None))
    return findings, sources


def _from_fstab(view: ImageTree) -> tuple[list[Finding], list[Source]]:
    """What the image's etc/fstab says of / (or /sysroot)."""
    fstab = view.files.get("etc/fstab")
    sources: list[Source] = []
    for line in (fstab or b"").decode(errors="replace").splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[1] in ("/", "/sysroot"):
            sources.append(("etc/fstab", fields[0], fields[2] if len(fields) > 2 else None))
    return [], sources


def _disagreements(sources: list[Source], expected: str | None) -> list[Finding]:
    """Where the places that name the root device (or its type) disagree, or differ from
    the device expected."""
    findings: list[Finding] = []
    if len({dev for _, dev, _ in sources}) > 1:
        detail = "; ".join(f"{where} says {dev}" for where, dev, _ in sources)
        findings.append(Finding("problem", f"inconsistent root device: {detail}"))
    if len({fs for _, _, fs in sources if fs and fs != "auto"}) > 1:
        detail = "; ".join(f"{where} says {fs}" for where, _, fs in sources if fs)
        findings.append(Finding("problem", f"inconsistent root filesystem type: {detail}"))
    if expected is not None:
        findings += [Finding("problem", f"{where} names root device {dev}, expected {expected}")
                     for where, dev, _ in sources if dev != expected]
    return findings


def _init(view: ImageTree) -> list[Finding]:
    path = "init" if "init" in view.kinds else ("linuxrc" if "linuxrc" in view.kinds else None)
    if path is None:
        return [Finding("note", "no /init: the kernel will mount root= itself, as for an old-style initrd")]
    try:
        real, _ = view.resolve(path)
    except Unresolved as exc:
        return [Finding("problem", f"/{path} is a symlink to '{view.links.get(path)}', which names "
                        f"nothing in the image: {exc}")]
    if view.kinds.get(real) != "file":
        return [Finding("problem", f"/{path} is a {view.kinds.get(real)}, not a file")]
    if not view.modes.get(real, 0) & 0o111:
        return [Finding("problem", f"/{path} is not executable (mode {view.modes[real] & 0o7777:04o})")]
    script = view.files.get(path) or view.files.get(real) or b""
    if script.startswith(b"#!"):
        interp = script[2:].split(b"\n", 1)[0].strip().split()
        if interp:
            name = os.fsdecode(interp[0])
            try:
                target, _ = view.resolve(name)
            except Unresolved as exc:
                if exc.followed:
                    return [Finding("problem", f"/{path} wants interpreter {name}, a dangling symlink "
                                    f"({', '.join(exc.followed)}): {exc.path} is not in the image")]
                target = ""
            if view.kinds.get(target) != "file":
                return [Finding("problem", f"/{path} wants interpreter {name}, which is not in the image")]
    return [Finding("ok", f"/{path} is an executable file")]


def check_image(image: Path, *, root: str | None = None, kernel_config: Path | None = None,
                max_size: int = DEFAULT_MAX_SIZE, max_entries: int = DEFAULT_MAX_ENTRIES) -> list[Finding]:
    """All findings for `image`; unreadable images raise InputError."""
    # A file that is no kernel config is refused before the image is read.
    config = read_kernel_config(kernel_config) if kernel_config is not None else None
    reader = ImageReader(image, max_size=max_size, max_entries=max_entries)
    view, findings = _scan(reader)
    return [*_parts(reader, config), *findings, *_init(view), *_root_device(view, root),
            *(Finding("note", w) for w in reader.warnings)]
