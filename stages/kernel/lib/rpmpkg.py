"""RPM packages through the rpm bindings: headers, payload files, rpmbuild command lines."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from respin.pipeline.errors import CommandError, ConfigError, InputError, RespinError, UsageError, one_line
from respin.pipeline.process import run  # probes of the host only; a stage's commands go through ctx.run
from respin.stages.lib.rpmmacros import REPRO_MACROS, build_switches


@dataclass(frozen=True)
class PackageInfo:
    """What respin needs from a package header."""

    name: str
    version: str
    release: str
    arch: str
    is_source: bool
    changelog_time: int | None
    build_time: int | None
    files: tuple[str, ...]
    size: int = 0  # of the files it installs, in bytes
    epoch: int | None = None
    # %ghost files: listed (and owned once installed) but carried without content,
    # as Fedora's kernel-core lists /boot/config-* (kernel-install copies it there).
    ghosts: frozenset[str] = frozenset()

    @property
    def nvr(self) -> str:
        return f"{self.name}-{self.version}-{self.release}"

    @property
    def nevra(self) -> str:
        """What names the package in a repository: two files with one NEVRA are one package."""
        epoch = f"{self.epoch}:" if self.epoch is not None else ""
        return f"{self.name}-{epoch}{self.version}-{self.release}.{'src' if self.is_source else self.arch}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@contextlib.contextmanager
def _librpm_stderr() -> Iterator[list[str]]:
    """Catch what librpm prints on fd 2 (its `error: ... hdr blob ...` lines) while a package
    is read, so the user sees respin's one line; the list is filled when the block ends."""
    said: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode(errors="replace")
            said += [ln.strip() for ln in text.splitlines() if ln.strip()]


def _librpm_words(said: list[str], path: Path) -> str:
    """librpm's own lines, without its `error:` prefix and the path respin names anyway."""
    words = []
    for line in said:
        line = line.removeprefix("error:").strip()
        line = line.removeprefix(f"{path}:").strip()
        words.append(line)
    return "; ".join(words)


def _header(path: Path) -> Any:
    import rpm  # the bindings take a tenth of a second to load: only when a package is read

    ts = rpm.TransactionSet()
    # Packages here are rebuilt locally and unsigned; signatures are not the question.
    ts.setVSFlags(rpm._RPMVSF_NOSIGNATURES | rpm._RPMVSF_NODIGESTS)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        # A directory opens fine; librpm would then fail to read it with a line of its own.
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise InputError(f"{path}: is a directory, expected an RPM package")
        with _librpm_stderr() as said:
            try:
                return ts.hdrFromFdno(fd)
            except rpm.error as exc:
                failure = exc
        words = _librpm_words(said, path)
        raise InputError(f"{path}: not an RPM package ({failure}{': ' + words if words else ''})") \
            from failure
    finally:
        os.close(fd)


def read_package(path: Path) -> PackageInfo:
    """Read a package's header, or fail with one line naming the file."""
    import rpm

    hdr = _header(path)
    times = hdr[rpm.RPMTAG_CHANGELOGTIME] or []
    files = tuple(_text(f) for f in (hdr[rpm.RPMTAG_FILENAMES] or []))
    flags = hdr[rpm.RPMTAG_FILEFLAGS] or []
    return PackageInfo(
        name=_text(hdr[rpm.RPMTAG_NAME]),
        version=_text(hdr[rpm.RPMTAG_VERSION]),
        release=_text(hdr[rpm.RPMTAG_RELEASE]),
        arch=_text(hdr[rpm.RPMTAG_ARCH]) if hdr[rpm.RPMTAG_ARCH] else "noarch",
        is_source=bool(hdr.isSource()),
        changelog_time=int(times[0]) if times else None,
        build_time=int(hdr[rpm.RPMTAG_BUILDTIME]) if hdr[rpm.RPMTAG_BUILDTIME] else None,
        files=files,
        size=int(hdr[rpm.RPMTAG_LONGSIZE] or 0),
        epoch=int(hdr[rpm.RPMTAG_EPOCH]) if hdr[rpm.RPMTAG_EPOCH] is not None else None,
        ghosts=frozenset(f for f, flag in zip(files, flags, strict=False) if flag & rpm.RPMFILE_GHOST),
    )


def payload_files(path: Path, wanted: re.Pattern[str]) -> Iterator[tuple[str, bytes]]:
    """Yield (name, content) of regular files in the payload whose name matches `wanted`.

    A %ghost file has no content in the package: it is never yielded, whatever
    the payload holds under its name.
    """
    import rpm

    ts = rpm.TransactionSet()
    ts.setVSFlags(rpm._RPMVSF_NOSIGNATURES | rpm._RPMVSF_NODIGESTS)
    fd = rpm.fd.open(str(path))
    try:
        # Reading the header leaves the descriptor at the start of the payload.
        hdr = ts.hdrFromFdno(fd)
        compressor = _text(hdr[rpm.RPMTAG_PAYLOADCOMPRESSOR] or "gzip")
        payload = rpm.fd(fd, "r", flags=compressor)
        archive = rpm.files(hdr).archive(payload, write=False)
        for entry in archive:
            name = _text(entry.name)
            if entry.fflags & rpm.RPMFILE_GHOST:
                continue
            if wanted.search(name) and archive.hascontent():
                yield name, archive.read()
    except rpm.error as exc:
        raise InputError(f"{path}: cannot read the payload ({exc})") from exc
    finally:
        fd.close()


def rpmbuild_argv(mode: str, spec: Path, *, topdir: Path, target: str | None,
                  with_: Sequence[str] = (), without: Sequence[str] = (), nodeps: bool = True,
                  defines: Mapping[str, str] | None = None) -> list[str]:
    """An rpmbuild command line that keeps everything under `topdir`."""
    argv = ["rpmbuild", mode, *(["--nodeps"] if nodeps else [])]
    argv += build_switches(target, with_, without, {"_topdir": str(topdir), **REPRO_MACROS,
                                                    **(defines or {})})
    argv.append(str(spec))
    return argv



# rpm stores the parsed spec, with %{_topdir} and %{_specdir} expanded, in the
# source package's header, and every binary package carries the source
# package's digest: byte-identical packages from two work dirs need one topdir
# path. rpmbuild therefore runs in a private mount namespace where the work
# dir's topdir is bind-mounted at this fixed path (a tmpfs hides whatever the
# host has at /var/tmp for that one command only).
FIXED_TOPDIR = Path("/var/tmp/respin/rpmbuild")

# Where the [sign] keys are seen during a build: a fixed path (rpm keeps the parsed
# spec, %pesign's expansion included, in the source package), on the namespace's
# tmpfs, where they are copied for the build: readable by the build alone, and gone
# with the namespace.
FIXED_KEYS = Path("/var/tmp/respin/keys")

# The unprivileged identity a build runs as when respin runs as root: a spec is code, and
# code from a package never runs as root. One fixed uid and gid of respin's own, high above
# any account (no passwd entry, no home), so no other process runs as it; `nobody` where the
# host's id map stops short of it.
BUILDER_ID = 2**31 - 2**16
_NOBODY = 65534

# Arguments: the builder ("uid:gid", or "-" to stay who we are), triples of how ("bind" or
# "copy"), a directory and where the command sees it under /var/tmp (each opened on fds
# 4... before the tmpfs goes over /var/tmp), "--", the topdir, the command. A "copy" is
# copied onto the tmpfs and given to the builder (mode 0700): what only this build may
# read. The command runs as the builder, with no capability and no way to gain one.
_NAMESPACE_SCRIPT = f"""set -e
builder=$1
shift
fd=4 at=0 after=
for arg in "$@"; do
  if [ -n "$after" ]; then exec 3<"$arg"; break
  elif [ "$arg" = -- ]; then after=1
  elif [ $((at % 3)) = 1 ]; then eval "exec $fd<\\"\\$arg\\""; fd=$((fd + 1))
  fi
  at=$((at + 1))
done
mount -t tmpfs -o mode=1777 respin /var/tmp
mkdir -p -m 0755 /var/tmp/respin {FIXED_TOPDIR}
mount --no-canonicalize --bind /proc/self/fd/3 {FIXED_TOPDIR}
exec 3<&-
fd=4
while [ "$1" != -- ]; do
  mkdir -p "$3"
  if [ "$1" = copy ]; then
    cp -R /proc/self/fd/$fd/. "$3"
    chmod -R go= "$3"
    if [ "$builder" != - ]; then chown -R "$builder" "$3"; fi
  else
    mount --no-canonicalize --bind /proc/self/fd/$fd "$3"
  fi
  eval "exec $fd<&-"
  fd=$((fd + 1))
  shift 3
done
shift 2
cd {FIXED_TOPDIR}
if [ "$builder" = - ]; then exec "$@"; fi
exec setpriv --reuid="${{builder%:*}}" --regid="${{builder#*:}}" --clear-groups --no-new-privs \\
  --inh-caps=-all --bounding-set=-all -- "$@"
"""


@functools.cache
def _namespace_prefix() -> tuple[str, ...] | None:
    """The unshare command line that gives a private mount namespace, or None if none works.

    Root gets a plain mount namespace (the build then drops to the builder); another user a
    user namespace mapped to root (so the packaged files read as root's, as in a root build).
    """
    if shutil.which("unshare") is None:
        return None
    # A pid namespace of its own too: when the command ends, every process it left (a
    # daemon a spec started) is killed with it, so nothing of the package's outlives the
    # build or races respin's reads of what it wrote; --kill-child ends it if respin dies.
    base = ("unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child")
    prefix = base if os.geteuid() == 0 else (*base[:1], "--user", "--map-root-user", *base[1:])
    probe = run([*prefix, "sh", "-c", "mount -t tmpfs respin /var/tmp"], check=False,
                what="a mount namespace probe")
    return prefix if probe.returncode == 0 else None


def _mapped(ident: int, which: str) -> bool:
    """Whether `ident` is in this process's user namespace's uid or gid map."""
    try:
        rows = Path(f"/proc/self/{which}").read_text().split("\n")
    except OSError:
        return ident == _NOBODY
    for row in rows:
        parts = row.split()
        if len(parts) == 3 and int(parts[0]) <= ident < int(parts[0]) + int(parts[2]):
            return True
    return False


@functools.cache
def builder() -> tuple[int, int] | None:
    """The uid and gid rpmbuild runs as when respin runs as root; None for another user,
    whose build runs as that user (mapped to root in a user namespace of its own)."""
    if os.geteuid() != 0:
        return None
    ident = BUILDER_ID if _mapped(BUILDER_ID, "uid_map") and _mapped(BUILDER_ID, "gid_map") else _NOBODY
    return ident, ident


def fixed_topdir_available() -> bool:
    """Whether rpmbuild can run with the fixed topdir path here."""
    return _namespace_prefix() is not None


def in_fixed_topdir(argv: Sequence[str], topdir: Path, mounts: Mapping[Path, Path] | None = None,
                    copies: Mapping[Path, Path] | None = None) -> list[str] | None:
    """`argv` (built with FIXED_TOPDIR paths) wrapped to run with `topdir` mounted there, as
    the builder when respin runs as root.

    `mounts`: directories the command sees at another path under /var/tmp (seen path ->
    directory); `copies`: directories copied there for the command alone (the keys). None
    when no private mount namespace can be had (then build with the real path).
    """
    prefix = _namespace_prefix()
    if prefix is None:
        return None
    triples = [("bind", str(d.resolve()), str(seen)) for seen, d in (mounts or {}).items()]
    triples += [("copy", str(d.resolve()), str(seen)) for seen, d in (copies or {}).items()]
    if len(triples) > 6:  # fds 4 to 9: what sh redirects by number
        raise ValueError("in_fixed_topdir: at most 6 directories to mount under /var/tmp")
    ident = builder()
    who = f"{ident[0]}:{ident[1]}" if ident else "-"
    return [*prefix, "sh", "-c", _NAMESPACE_SCRIPT, "respin-rpmbuild", who,
            *(part for triple in triples for part in triple), "--", str(topdir), *argv]


def as_builder(argv: Sequence[str], tree: Path, mounts: Mapping[Path, Path] | None = None) -> list[str]:
    """`argv` to run in `tree` (a directory the builder may write): as it is for a user
    other than root (run it with cwd=tree), else as the builder with `tree` seen at
    FIXED_TOPDIR, its current directory, and `mounts` where in_fixed_topdir puts them, in
    namespaces that end with it."""
    if builder() is None:
        return list(argv)
    wrapped = in_fixed_topdir(argv, tree, mounts)
    if wrapped is None:
        must_drop_root(False)
    assert wrapped is not None
    return wrapped


# The errors a builder's child may report, by name: its reply is data, never a class to load.
_CHILD_ERRORS: dict[str, type[RespinError]] = {cls.__name__: cls for cls in (
    UsageError, ConfigError, InputError, CommandError)}
# A reply no spec edit comes near; the child's output is not read further.
_REPLY_LIMIT = 64 << 20


def call_as_builder(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)`, as the builder when respin runs as root: for what executes package code
    in this process (rpm's spec parser runs a spec's %(...) and %{lua:...} while it parses).

    A forked child drops to the builder (no groups, no capability, no_new_privs), calls `fn`
    and sends back its result, which must be JSON data (lists come back as lists), or its
    respin error. The reply is parsed as JSON and nothing else: the package code ran in that
    child and may have written the pipe itself, so it is never unpickled. The modules `fn`
    needs must be imported before the call (the child may not read respin's files). As
    another user: a plain call."""
    ident = builder()
    if ident is None:
        return fn(*args)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(ident[1])
            os.setuid(ident[0])
            _no_new_privs()
            try:
                reply: dict[str, Any] = {"ok": fn(*args)}
            except RespinError as exc:
                reply = {"error": [type(exc).__name__, exc.message]}
            except Exception as exc:  # said in one line by the parent
                reply = {"crash": f"{type(exc).__name__}: {exc}"}
            with os.fdopen(write_fd, "w", encoding="utf-8") as out:
                json.dump(reply, out)
        except BaseException:  # a child must never go on to run the parent's code
            code = 1
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        data = fh.read(_REPLY_LIMIT + 1)
    _, status = os.waitpid(pid, 0)
    answer: Any = None
    with contextlib.suppress(ValueError):
        answer = json.loads(data) if len(data) <= _REPLY_LIMIT else None
    if not isinstance(answer, dict) or len(answer) != 1:
        raise CommandError(f"the unprivileged helper ended with status {os.waitstatus_to_exitcode(status)} "
                           "and no answer respin can read")
    if "ok" in answer:
        return answer["ok"]
    error = answer.get("error")
    if isinstance(error, list) and len(error) == 2 and all(isinstance(e, str) for e in error):
        raise _CHILD_ERRORS.get(error[0], CommandError)(error[1])
    raise CommandError(f"the unprivileged helper failed: {one_line(str(answer.get('crash')))}")


def _no_new_privs() -> None:
    """prctl(PR_SET_NO_NEW_PRIVS): no setuid program can give the builder back root."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def give_to_builder(path: Path, mode: int | None = None) -> None:
    """Make `path`, a directory respin made, and everything in it the builder's (when respin
    runs as root), `path` itself with `mode`: what the build may write. Walked through
    directory descriptors, never through a link."""
    ident = builder()
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path}: is not a directory (a build tree is one respin makes)")
    if mode is not None:
        os.chmod(path, mode)
    if ident is not None:
        _chown_tree(path, *ident)


def take_back(path: Path) -> None:
    """Make what the builder wrote under `path` (packages) respin's own again, so no build
    that runs later as the builder can change it."""
    if builder() is not None and path.is_dir() and not path.is_symlink():
        _chown_tree(path, os.geteuid(), os.getegid())


def _each_entry(path: Path, fn: Callable[[str | Path, int | None, os.stat_result], None], *,
                recurse: bool = True) -> None:
    """`fn(name, dir_fd, lstat)` for `path` and, with `recurse`, everything under it, walked
    through directory descriptors without following a link."""
    fn(path, None, os.lstat(path))
    if not recurse:
        return
    for _top, dirs, files, dir_fd in os.fwalk(path, follow_symlinks=False):
        for name in (*dirs, *files):
            with contextlib.suppress(FileNotFoundError):
                fn(name, dir_fd, os.stat(name, dir_fd=dir_fd, follow_symlinks=False))


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    def one(name: str | Path, dir_fd: int | None, st: os.stat_result) -> None:
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)

    _each_entry(path, one)


def share_with_builder(topdir: Path) -> None:
    """Let the builder read what a build reads of `topdir` (the spec and the sources), which
    stay respin's: the builder's group gets read (and search) on them and on `topdir`, so
    with a umask of 077 they stay closed to every other user."""
    ident = builder()
    if ident is None:
        return
    _share(topdir, ident[1], recurse=False)
    for sub in ("SPECS", "SOURCES"):
        if (topdir / sub).is_dir() and not (topdir / sub).is_symlink():
            _share(topdir / sub, ident[1], recurse=True)


def _share(path: Path, gid: int, *, recurse: bool) -> None:
    def one(name: str | Path, dir_fd: int | None, st: os.stat_result) -> None:
        # What every user may read already is left alone: SOURCES are hard links to fetch's
        # copy, whose files no other stage changes.
        others = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(st.st_mode) else 0)
        if stat.S_ISLNK(st.st_mode) or st.st_mode & others == others:
            return
        if st.st_gid != gid:
            os.chown(name, -1, gid, dir_fd=dir_fd, follow_symlinks=False)
        want = st.st_mode | stat.S_IRGRP | (stat.S_IXGRP if stat.S_ISDIR(st.st_mode) else 0)
        if stat.S_IMODE(want) != stat.S_IMODE(st.st_mode):
            os.chmod(name, stat.S_IMODE(want), dir_fd=dir_fd)

    _each_entry(path, one, recurse=recurse)


def build_trees(topdir: Path) -> None:
    """The directories of `topdir` a build writes, made and given to the builder: BUILD and
    BUILDROOT private to it (mode 0700: the build's key is in there while it runs), RPMS
    and SRPMS readable."""
    for sub, mode in (("BUILD", 0o700), ("BUILDROOT", 0o700), ("RPMS", 0o755), ("SRPMS", 0o755)):
        (topdir / sub).mkdir(parents=True, exist_ok=True)
        give_to_builder(topdir / sub, mode)
    share_with_builder(topdir)


def must_drop_root(fixed: bool) -> None:
    """Refuse to build as root where the build cannot be run as the builder (`fixed`: in a
    private mount namespace with the fixed topdir)."""
    if builder() is not None and not fixed:
        raise UsageError("respin runs as root and builds as an unprivileged user in a private mount "
                         "namespace, which unshare cannot make here; run respin as another user")
    if builder() is not None and shutil.which("setpriv") is None:
        raise UsageError("respin runs as root and builds as an unprivileged user with setpriv, which "
                         "is not installed (util-linux)")


def to_fixed(path: Path, topdir: Path) -> Path:
    """`path` under `topdir` as seen at FIXED_TOPDIR (unchanged if it is elsewhere)."""
    try:
        return FIXED_TOPDIR / Path(path).absolute().relative_to(topdir.absolute())
    except ValueError:
        return Path(path)


def from_fixed(path: Path, topdir: Path) -> Path:
    """A path rpmbuild printed under FIXED_TOPDIR, as the real path under `topdir`."""
    try:
        return topdir / Path(path).relative_to(FIXED_TOPDIR)
    except ValueError:
        return Path(path)


def written_packages(log_text: str) -> list[Path]:
    """The packages rpmbuild reports in its `Wrote:` lines, in order."""
    return [Path(m.group(1).strip()) for m in re.finditer(r"^Wrote: (.+\.rpm)\s*$", log_text, re.M)]


_BOILERPLATE = re.compile(r"^(RPM build errors:|error: Bad exit status|Bad exit status|\+ |Processing |"
                          r"Executing\(|$)")
_TELLING = re.compile(r"^Found CONFIG_|error|fail|refus|not listed|no such|cannot|can't", re.I)


def rpmbuild_reason(log_text: str) -> str:
    """The line of a failed rpmbuild's log that says why, not rpm's closing boilerplate.

    A spec's own check ("Found CONFIG_X ... after generation") beats a generic
    error line; either beats "Bad exit status from /var/tmp/rpm-tmp.X".
    """
    lines = [ln.strip() for ln in log_text.splitlines()]
    useful = [ln for ln in lines if not _BOILERPLATE.match(ln)]
    # Fedora's process_configs.sh -n: a heading, then the new symbols one per line.
    for i, line in enumerate(useful):
        if line.startswith("Found unset config items"):
            items = [ln.split("=", 1)[0] for ln in useful[i + 1:i + 40] if ln.startswith("CONFIG_")]
            shown = ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")
            return f"{line}: {shown}" if items else line
    for pattern in (re.compile(r"^Found CONFIG_"), _TELLING):
        hits = [ln for ln in useful if pattern.search(ln)]
        if hits:
            return hits[-1]
    return useful[-1] if useful else ""
