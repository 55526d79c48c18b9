"""Pipeline files: a `[pipeline]` table of settings plus one table per stage."""

from __future__ import annotations

import itertools
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from respin.pipeline import registry
from respin.pipeline.errors import ConfigError, InputError, RespinError, UsageError
from respin.pipeline.options import Check, Invalid, OptionsError, matching, parse_options
from respin.pipeline.stage import Stage
from respin.pipeline.workdirs import check as check_owner

_ARCH = re.compile(r"[A-Za-z0-9_]+")


def check_target(target: str) -> str:
    """Refuse a target that is no architecture name: build tools take it as an option's value."""
    if not _ARCH.fullmatch(target):
        raise Invalid(f"{target!r} is not an architecture name (letters, digits and _, "
                      "as x86_64 or i686)")
    return target


def _one_line(value: str) -> str:
    if "\n" in value:
        raise Invalid(f"{value!r} is not a one-line string value")
    return value


Target = Annotated[str, Check(check_target)]
MacroName = Annotated[str, matching(r"[A-Za-z0-9_]+", "is not a macro name")]


@dataclass(frozen=True)
class Settings:
    """The `[pipeline]` table."""

    target: Target | None = None  # the architecture every stage that builds builds for
    workdir: str | None = None  # relative to the pipeline file's folder; default DEFAULT_WORKDIR
    stages: tuple[str, ...] | None = None  # explicit stage order
    template: str | None = None  # a named stage sequence a plugin or domain registers
    source_date_epoch: int | None = None  # else the environment, else what a domain decides
    # Macro definitions every build tool of the run gets (name -> value), the same for each
    # stage; each domain says which of its tools read them.
    define: dict[MacroName, Annotated[str, Check(_one_line)]] = field(default_factory=dict)


# The default work dir of `x.toml`: `_respin/x` beside it, one per pipeline file, so two
# files in one folder never share (and so never replace) each other's outputs.
DEFAULT_WORKDIR = "_respin"


@dataclass(frozen=True)
class PipelineFile:
    """A loaded, validated pipeline file."""

    path: Path
    settings: Settings
    stages: tuple[Stage[Any], ...]
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def workdir(self) -> Path:
        given = self.settings.workdir
        p = Path(given).expanduser() if given is not None else Path(DEFAULT_WORKDIR, self.path.stem)
        return p if p.is_absolute() else (self.path.parent / p).resolve()

    def settings_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"target": self.settings.target,
                                "source_date_epoch": self.settings.source_date_epoch}
        if self.settings.define:  # only when given: older work dirs stay up to date
            data["define"] = dict(sorted(self.settings.define.items()))
        return data


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file (a pipeline file, a stage's own input), turning every failure into one
    line naming the file."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a directory, expected a pipeline file") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # TOML is UTF-8 by definition; say where the first stray byte is, so it can be found.
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                          f"{exc.start})") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except RecursionError as exc:
        # tomllib recurses once per nested array or inline table.
        raise ConfigError(f"{path}: not usable TOML: arrays or inline tables nested too deeply") from exc


def _stage_order(settings: Settings, sections: list[str], where: str) -> tuple[str, ...]:
    if settings.stages is not None:
        return settings.stages
    templates = registry.pipelines()
    if settings.template is not None:
        if settings.template not in templates:
            raise ConfigError(f"{where} [pipeline] template: unknown pipeline '{settings.template}' "
                              f"(known: {', '.join(sorted(templates)) or 'none'})")
        return templates[settings.template]
    # Default: the one named pipeline that has every section the file configures.
    fits = [name for name, order in sorted(templates.items())
            if sections and set(sections) <= set(order)]
    if len(fits) == 1:
        return templates[fits[0]]
    return tuple(sections)


def _check_order(order: tuple[str, ...], where: str) -> None:
    """Stages that a named pipeline also has must keep its order: a later one uses what the
    earlier one makes (prep unpacks what fetch installed)."""
    for name, template in sorted(registry.pipelines().items()):
        ranked = [s for s in order if s in template]
        for first, second in itertools.pairwise(ranked):
            if template.index(first) > template.index(second):
                raise ConfigError(f"{where}: '{first}' is listed before '{second}', which must come "
                                  f"first (the {name} pipeline runs {', '.join(template)})")


def load(file: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None) -> PipelineFile:
    """Load a pipeline file; every stage's table is checked against its Options."""
    path = Path(file).resolve()
    raw = read_toml(path)
    where = str(path)
    table = raw.get("pipeline", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [pipeline] must be a table")
    sections = [k for k in raw if k != "pipeline"]
    try:
        settings = parse_options(Settings, {**table, **(overrides or {})}, f"{where} [pipeline]")
    except ConfigError as exc:
        # The stage tables are checked all the same (in the file's order): one run names
        # every problem of the file.
        _build_stages(tuple(sections), raw, where, [exc])
        raise
    order = _checked_order(settings, sections, where)
    pipeline = PipelineFile(path, settings, _build_stages(order, raw, where), raw)
    error: type[RespinError]
    if overrides and "workdir" in overrides:
        given, error = "--workdir", UsageError
    elif settings.workdir is not None:
        given, error = f"{where} [pipeline] workdir", ConfigError
    else:
        given, error = f"{where}: the default work dir", ConfigError
    _check_workdir(pipeline.workdir, given, error)
    check_owner(pipeline.workdir, path, given, error)  # before anything is written there
    return pipeline


def _checked_order(settings: Settings, sections: list[str], where: str) -> tuple[str, ...]:
    """The stage order, refusing an empty one, a repeated stage and a table of no stage in it."""
    order = _stage_order(settings, sections, where)
    if not order:
        raise ConfigError(f"{where}: no stages: add stage tables or [pipeline] stages = [...]")
    twice = next((name for i, name in enumerate(order) if name in order[:i]), None)
    if twice is not None:
        raise ConfigError(f"{where} [pipeline] stages: '{twice}' is listed twice")
    if settings.stages is not None:
        _check_order(order, f"{where} [pipeline] stages")
    for name in sections:
        if name not in order:
            raise ConfigError(f"{where}: [{name}] is not a stage of this pipeline "
                              f"(stages: {', '.join(order)})")
    return order


def _build_stages(order: tuple[str, ...], raw: Mapping[str, Any], where: str,
                  failed: list[ConfigError] | None = None) -> tuple[Stage[Any], ...]:
    """Every stage of `order`, built from its table; the problems of all tables (and those
    `failed` holds already) are raised together, not one table's per run."""
    stages: list[Stage[Any]] = []
    failed = list(failed or ())
    for name in order:
        try:
            stages.append(_build_stage(name, raw, where))
        except ConfigError as exc:
            failed.append(exc)
    if len(failed) == 1:
        raise failed[0]
    if failed:
        raise OptionsError([line for exc in failed
                            for line in (exc.problems if isinstance(exc, OptionsError) else [exc.message])])
    return tuple(stages)


def _build_stage(name: str, raw: Mapping[str, Any], where: str) -> Stage[Any]:
    """The stage `name`, built from its table (an absent table is an empty one)."""
    try:
        cls = registry.stage(name)
    except Exception as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    stage_table = raw.get(name, {})
    if not isinstance(stage_table, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    return cls.from_table(stage_table, f"{where} [{name}]")


def _check_workdir(workdir: Path, given: str, error: type[RespinError]) -> None:
    """The work dir is a directory, or can be made one: not a file, nor inside one."""
    existing = workdir
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir():
        return
    if existing == workdir:
        raise error(f"{given} {workdir}: not a directory (the work dir must be one)")
    raise error(f"{given} {workdir}: cannot be made, {existing} is not a directory")
