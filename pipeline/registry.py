"""Stage, pipeline-template and command discovery through entry points.

Built-in stages are registered in respin's own pyproject under the same
group a plugin uses, so the engine never imports a concrete stage. A plugin
that does not fit the contract is rejected when it is loaded.
Set RESPIN_DISABLE_PLUGIN_AUTOLOAD=1 to load only respin's own entries.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any

from respin.pipeline.errors import UsageError
from respin.pipeline.startup import OWN_DIST as _OWN_DIST
from respin.pipeline.startup import own_entry_points

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from respin.pipeline.stage import Stage

STAGES_GROUP = "respin.stages"
PIPELINES_GROUP = "respin.pipelines"
COMMANDS_GROUP = "respin.commands"

class StageInfo:
    """A loaded stage class and where it came from (a plain class, not a dataclass:
    every `respin` call imports this module; see pipeline/startup.py)."""

    __slots__ = ("cls", "name", "origin")

    def __init__(self, name: str, cls: type[Stage[Any]], origin: str) -> None:
        self.name = name
        self.cls = cls
        self.origin = origin  # distribution name, "respin" for built-ins


def _entry_points(group: str) -> list[EntryPoint]:
    from importlib.metadata import entry_points  # deferred: pipeline/startup.py

    eps = sorted(entry_points(group=group), key=lambda e: e.name)
    if os.environ.get("RESPIN_DISABLE_PLUGIN_AUTOLOAD"):
        eps = [e for e in eps if e.dist is not None and e.dist.name == _OWN_DIST]
    return eps


def _origin(ep: EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "?"


def _check_stage(name: str, obj: Any, origin: str) -> type[Stage[Any]]:
    """Reject a stage class that does not fit the contract, naming the plugin."""
    import dataclasses  # deferred, as the stage contract: pipeline/startup.py

    from respin.pipeline.stage import Stage

    where = f"stage '{name}' from {origin}"
    if not (isinstance(obj, type) and issubclass(obj, Stage)):
        raise UsageError(f"{where}: entry point is not a respin.Stage subclass")
    if getattr(obj, "name", None) != name:
        raise UsageError(f"{where}: class name attribute is {getattr(obj, 'name', None)!r}, "
                         f"entry point says {name!r}")
    options = getattr(obj, "Options", None)
    if not (dataclasses.is_dataclass(options) and options.__dataclass_params__.frozen):  # type: ignore[union-attr]
        raise UsageError(f"{where}: Options must be a frozen dataclass")
    if obj.run is Stage.run:
        raise UsageError(f"{where}: does not implement run()")
    return obj


def _load_stage(name: str, eps: list[EntryPoint]) -> StageInfo:
    origins = sorted({_origin(ep) for ep in eps})
    if len(origins) > 1:
        raise UsageError(f"stage '{name}' is defined twice: by {origins[0]} and by {origins[1]}")
    ep = eps[0]
    try:
        obj = ep.load()
    except Exception as exc:  # a broken plugin must not look like a respin bug
        raise UsageError(f"stage '{name}' from {origins[0]} failed to load: {exc}") from exc
    return StageInfo(name, _check_stage(name, obj, origins[0]), origins[0])


def _stage_eps() -> dict[str, list[EntryPoint]]:
    by_name: dict[str, list[EntryPoint]] = {}
    for ep in _entry_points(STAGES_GROUP):
        by_name.setdefault(ep.name, []).append(ep)
    return by_name


@cache
def stages() -> dict[str, StageInfo]:
    """Every stage known, built-in and plugin, by name (each one loaded and checked)."""
    return {name: _load_stage(name, eps) for name, eps in sorted(_stage_eps().items())}


@cache
def stage_info(name: str) -> StageInfo:
    """One stage, loading only its own entry point: a pipeline imports what it uses."""
    eps = _stage_eps()
    if name not in eps:
        raise UsageError(f"unknown stage '{name}' (known: {', '.join(sorted(eps)) or 'none'})")
    return _load_stage(name, eps[name])


def stage(name: str) -> type[Stage[Any]]:
    """The stage class called `name`, or a usage error listing the known ones."""
    return stage_info(name).cls


@cache
def pipelines() -> dict[str, tuple[str, ...]]:
    """Named stage sequences (template name -> stage names) that pipeline files default to."""
    found: dict[str, tuple[str, ...]] = {}
    for ep in _entry_points(PIPELINES_GROUP):
        value = ep.load()
        if not (isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value)):
            raise UsageError(f"pipeline '{ep.name}' from {_origin(ep)} is not a list of stage names")
        found[ep.name] = tuple(value)
    return found


def commands(only: str | None = None) -> dict[str, Callable[..., None]]:
    """CLI sub-command providers: name -> register(subparsers).

    With `only` naming a registered command, just that provider is loaded (the
    others are not imported); any other value loads them all.
    """
    found: dict[str, Callable[..., None]] = {}
    own = own_entry_points(COMMANDS_GROUP)
    if only is not None and only in own:
        module, _, attr = own[only].partition(":")
        return {only: getattr(import_module(module), attr)}
    # respin's own command names are reserved: a plugin's entry of that name is ignored.
    eps = [ep for ep in _entry_points(COMMANDS_GROUP) if ep.name not in own or _origin(ep) == _OWN_DIST]
    if only is not None and any(ep.name == only for ep in eps):
        eps = [ep for ep in eps if ep.name == only]
    for ep in eps:
        try:
            found[ep.name] = ep.load()
        except Exception as exc:
            raise UsageError(f"command '{ep.name}' from {_origin(ep)} failed to load: {exc}") from exc
    return found
