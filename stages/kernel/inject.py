"""inject: declare the config patch in the spec and apply it after the last patch.

Kernel specs refuse a patch that is not listed as `^PatchN: <file>$` in
%{_specdir}/<name>.spec, so the tag has exactly that shape and the spec keeps
its path and name. Running the edit twice changes nothing the second time.
"""

from __future__ import annotations

import datetime
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from respin.pipeline import fsutil
from respin.pipeline.errors import CommandError, ConfigError, InputError
from respin.pipeline.options import matching
from respin.pipeline.stage import Artifact, Context, Stage
from respin.stages.kernel.kinds import (
    BUILD_INPUT,
    SOURCES,
    SPEC,
    Edited,
    Fetched,
    Injected,
    Snapshot,
)
from respin.stages.kernel.lib import kconfig, mechanism, rpmpkg, topdir
from respin.stages.kernel.lib.spectext import (
    Identity,
    find_prep_point,
    identity,
    own_files,
    rpm_literal,
    spec_line,
)
from respin.stages.lib.rpmmacros import DIST_TAG

if TYPE_CHECKING:
    from specfile.specfile import Specfile

_BUILDID_USE = re.compile(r"%\{\??buildid\}")
_BUILDID_DEF = re.compile(r"^%(define|global)\s+buildid\s+(\S+)\s*$", re.M)
# Fedora keeps "# define buildid .local" (no %: rpm would expand a commented macro).
_BUILDID_COMMENTED = re.compile(r"^#\s*%?\s*(define|global)\s+buildid\b.*$", re.M)
_PATCH_TAG = re.compile(r"^Patch(\d+)\s*:\s*(\S+)\s*$", re.M | re.I)
_TAG_LINE = re.compile(r"^\s*(Source|Patch)\d*\s*:", re.I)
_RELEASE = re.compile(r"^(Release\s*:\s*)(\S.*?)\s*$", re.M | re.I)
# A patch file name: what a PatchN tag and an ApplyPatch line carry as they are.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
PatchName = Annotated[str, matching(_PLAIN_NAME.pattern, "is not a plain file name")]
BuildId = Annotated[str, matching(r"\.[A-Za-z0-9._+~]+",
                                  "must start with '.' and hold only letters, digits and . _ + ~")]


@dataclass(frozen=True)
class Injection:
    """What to add to the spec."""

    patch: str | None  # the Patch to declare and apply; None: the release mark and the entry only
    changelog: str
    buildid: str
    packager: str
    when: datetime.date
    evr: str
    number: int | None = None


def _patch_tag(spec: Specfile, text: str, patch: str, number: int | None, where: str) -> tuple[str, int]:
    existing = {m.group(2): int(m.group(1)) for m in _PATCH_TAG.finditer(text)}
    if patch in existing:
        return text, existing[patch]
    with spec.patches() as patches:
        highest = max((p.number for p in patches), default=-1)
    if number is None:
        number = highest + 1  # above every existing one, 1000000 after Patch999999
    elif number <= highest:
        raise ConfigError(f"{where}: patch number {number} is not above the highest, {highest}")
    # One line added after the last PatchN (else SourceN) line, every other line kept as it is
    # (specfile's own insertion took the blank line before %description), in exactly the shape
    # ApplyPatch greps for: "PatchN: file".
    lines = text.split("\n")
    tags = [i for i, ln in enumerate(lines) if _TAG_LINE.match(ln)]
    last = max((i for i in tags if lines[i].lstrip().lower().startswith("patch")), default=None)
    if last is None:
        last = max(tags, default=None)
    if last is None:
        raise InputError(f"{where}: no Source or Patch tag to declare the config patch after")
    lines.insert(last + 1, f"Patch{number}: {patch}")
    return "\n".join(lines), number


def _apply_line(text: str, patch: str, number: int, where: str) -> str:
    lines = text.splitlines()
    point = find_prep_point(lines, where)
    for ln in lines[point.prep_start:point.prep_end]:
        if re.match(rf"^\s*(ApplyPatch|ApplyOptionalPatch)\s+{re.escape(patch)}\b", ln) or \
                re.match(rf"^\s*%patch\s+-P\s*{number}\b", ln):
            return text
    line = f"%patch -P {number} -p1" if point.command == "%patch" else f"{point.command} {patch}"
    at = point.after_last_apply + 1
    return "\n".join(lines[:at] + [line] + lines[at:]) + "\n"


def _mark_release(text: str, buildid: str, where: str) -> str:
    if _BUILDID_USE.search(text):
        if m := _BUILDID_DEF.search(text):
            if m.group(2) == buildid:
                return text
            return text[:m.start()] + f"%define buildid {buildid}" + text[m.end():]
        line = f"%define buildid {buildid}\n"
        if m := _BUILDID_COMMENTED.search(text):
            return text[:m.end() + 1] + line + text[m.end() + 1:]
        return line + text
    m = _RELEASE.search(text)
    if m is None:
        raise InputError(f"{where}: no Release tag to mark the rebuild in")
    value = m.group(2)
    if buildid in value:
        return text
    value = value.replace("%{?dist}", f"{buildid}%{{?dist}}", 1) if "%{?dist}" in value else value + buildid
    return text[:m.start()] + m.group(1) + value + text[m.end():]


def _changelog(spec: Specfile, inj: Injection, where: str) -> str:
    """The spec with one %changelog entry for the change, its text, author and EVR written
    as rpm will read them back: literally."""
    text = str(spec)
    first = f"- {spec_line(inj.changelog, where)}"
    after = text.split("%changelog", 1)[1] if "%changelog" in text else ""
    top = [ln for ln in after.splitlines() if ln.strip()][:2]
    if len(top) == 2 and top[1].strip() == first:
        return text
    author, email = identity(inj.packager) or ("", "")  # Options checked it
    # specfile expands the EVR through rpm once before writing it: escape it twice.
    spec.add_changelog_entry([first], author=spec_line(author, where), email=spec_line(email, where),
                             timestamp=inj.when, evr=rpm_literal(spec_line(inj.evr, where)))
    return str(spec)


def _parsing(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(sourcedir, *args)`, which parses the spec with specfile: rpm's parser runs the
    spec's %(...) and %{lua:...}, package code, so as root it runs as the builder. specfile
    may create placeholder sources while parsing: it gets a scratch dir, not SOURCES."""
    # specfile (and the rpm bindings under it) load only when a spec is edited, so a run
    # with every stage up to date starts quickly; loaded here, before the builder's child.
    import specfile.specfile  # noqa: F401

    with tempfile.TemporaryDirectory() as sourcedir:
        rpmpkg.give_to_builder(Path(sourcedir), 0o700)
        return rpmpkg.call_as_builder(fn, sourcedir, *args)


def _parse_error(exc: Exception, where: str) -> InputError:
    detail = [ln for ln in str(exc).splitlines() if ln.strip()]
    return InputError(f"{where}: rpm cannot parse the spec: {detail[-1] if detail else exc}")


def inject_text(text: str, inj: Injection, where: str) -> tuple[str, int | None]:
    """The spec text with the patch (if any) declared and applied, the release marked and a
    changelog entry; also the patch's tag number. The one way respin edits a spec."""
    # What comes back from the builder's child is data to check: a text and a number.
    edited, number = _parsing(_edit, text, inj, where)
    if not isinstance(edited, str) or not (number is None or isinstance(number, int)):
        raise CommandError(f"{where}: the spec edit came back as no text and number")
    return edited, number


def _edit(sourcedir: str, text: str, inj: Injection, where: str) -> tuple[str, int | None]:
    from specfile.exceptions import SpecfileException
    from specfile.specfile import Specfile

    number = None
    try:
        if inj.patch is not None:
            spec = Specfile(content=text, sourcedir=sourcedir, force_parse=True)
            text, number = _patch_tag(spec, text, inj.patch, inj.number, where)
            text = _apply_line(text, inj.patch, number, where)
        text = _mark_release(text, inj.buildid, where)
        spec = Specfile(content=text, sourcedir=sourcedir, force_parse=True)
        return _changelog(spec, inj, where), number
    except SpecfileException as exc:
        raise _parse_error(exc, where) from exc


def default_patch_name(version: str) -> str:
    """linux-2.6-config-respin.patch for 2.6.27.5, linux-6.1-config-respin.patch for 6.1.0."""
    return f"linux-{'.'.join(version.split('.')[:2])}-config-respin.patch"


def marked_release(release: str, buildid: str, macros: Mapping[str, str]) -> str:
    """The Release the rebuilt package will have: the buildid goes where the spec puts
    it, before the dist tag (200.fc37 -> 200.respin.fc37), replacing an earlier one."""
    dist = macros.get("dist") or (m.group(0) if (m := DIST_TAG.search(release)) else "")
    base = release.removesuffix(dist) if dist and release.endswith(dist) else release
    old = macros.get("buildid", "")
    if old and base.endswith(old):
        base = base.removesuffix(old)
    if base.endswith(buildid):  # already marked
        base = base.removesuffix(buildid)
    return f"{base}{buildid}{dist}"


def change_summary(ctx: Context) -> str:
    """The requested values, then those respin added for them (listed as such)."""
    _, edited = Edited.read(ctx)
    added = edited.resolved
    asked = [r.line().lstrip("# ") for r in kconfig.recorded(edited.requests) if r.line() not in added]
    text = ", ".join(asked)
    if added:
        text += "; added for dependencies: " + ", ".join(line.lstrip("# ") for line in added)
    return text



class InjectStage(Stage["InjectStage.Options"]):
    """Add the PatchN tag, the ApplyPatch line, the release mark and a changelog entry."""

    name = "inject"
    results = (SPEC, BUILD_INPUT)
    summary = "declare and apply the config patch in the spec; mark the release; add a changelog entry"
    # 3: the build input, one record for both mechanisms; 2: the changelog's EVR as the package
    # will have it, added values listed
    version = "3"

    @dataclass(frozen=True)
    class Options:
        patch: PatchName | None = None  # default from the package: linux-X.Y-config-respin.patch
        number: int | None = None  # default: above every existing PatchN
        buildid: BuildId = ".respin"
        packager: Identity = "respin <respin@localhost>"


    def run(self, ctx: Context) -> list[Artifact]:
        import specfile  # only the stage that edits a spec needs it

        ctx.record_tool("specfile", specfile.__version__)
        _, fetched = Fetched.read(ctx)
        _, edited = Edited.read(ctx)
        carrier = mechanism.of(edited)
        # The build input, whole in inject's own dir: fetch's files hard-linked, the spec
        # and the change written in a temp dir put in place by rename, never half made.
        pristine_spec, pristine_sources = topdir.pristine(ctx)
        out = ctx.stagedir / "input"
        tmp = fsutil.fresh_dir(out)
        spec_path = topdir.lay_out(tmp, pristine_spec, pristine_sources)
        carried = carrier.carry(ctx, tmp / "SOURCES", lambda: self._patch_name(ctx, spec_path, fetched),
                                change_summary(ctx))
        when = datetime.datetime.fromtimestamp(topdir.source_date(ctx), datetime.UTC).date()
        inj = Injection(patch=carried.source if carried.declare else None, changelog=carried.entry,
                        buildid=self.options.buildid, packager=self.options.packager, when=when,
                        evr=self._evr(ctx, fetched), number=self.options.number)
        text, number = inject_text(spec_path.read_text(), inj, spec_path.name)
        fsutil.atomic_write(spec_path, text)
        fsutil.commit_dir(tmp, out)
        if number is not None:
            ctx.log.info("inject: Patch%d: %s applied after the last patch in %%prep", number, carried.source)
        elif carried.source is not None:
            ctx.log.info("inject: %s carries the change; release marked %s", carried.source,
                         self.options.buildid)
        else:
            ctx.log.info("inject: nothing to carry (every value already set); release marked %s",
                         self.options.buildid)
        injected = Injected(buildid=self.options.buildid, source=carried.source, number=number)
        return [injected.artifact(out / "SPECS" / spec_path.name), injected.artifact(out, BUILD_INPUT)]

    def _patch_name(self, ctx: Context, spec_path: Path, fetched: Fetched) -> str:
        """The config patch's file name: [inject] patch, else one from the version; never one
        of the package's own files."""
        patch_name = self.options.patch or default_patch_name(fetched.version)
        if not _PLAIN_NAME.fullmatch(patch_name):
            raise InputError(f"{spec_path.name}: version '{fetched.version}' gives no plain patch "
                             "file name: set [inject] patch")
        # The config patch goes into SOURCES/ under its name: never over one of the package's own
        # files, which would leave the build and the SRPM without it.
        owner = own_files(spec_path.read_text(), ctx.artifact(SOURCES).path).get(patch_name)
        if owner is not None:
            given = "patch" if self.options.patch else f"patch (default {patch_name})"
            raise ConfigError(f"{ctx.source.name} [inject] {given}: {patch_name} is the package's own "
                              f"{owner} in {spec_path.name}; the config patch would replace it: set "
                              "[inject] patch to another name")
        return patch_name

    def _evr(self, ctx: Context, fetched: Fetched) -> str:
        macros = Snapshot.read(ctx)[1].macros
        return f"{fetched.version}-{marked_release(fetched.release, self.options.buildid, macros)}"
