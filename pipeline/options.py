"""Stage options: a frozen dataclass filled from a TOML table, strictly.

Unknown keys and wrong types are errors that name the key and the file,
like osbuild's schemas that reject additional properties.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from respin.pipeline.errors import ConfigError

T = TypeVar("T")


def _typename(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_typename(a) for a in get_args(tp) if a is not type(None))
    if origin in (list, tuple):
        # In TOML's words: `unset = ["CONFIG_X"]` is an array.
        inner = get_args(tp)[0] if get_args(tp) else Any
        return "an array" if inner is Any else f"an array of {_plural(inner)}"
    if origin is dict:
        return "a table"
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    return getattr(tp, "__name__", str(tp))


def _plural(tp: Any) -> str:
    """What an array of `tp` holds, in the plural: "strings", "tables", ..."""
    plural = {str: "strings", int: "integers", float: "numbers", bool: "true/false values"}
    if tp in plural:
        return plural[tp]
    if get_origin(tp) in (dict, Mapping, typing.Mapping) or dataclasses.is_dataclass(tp):
        return "tables"
    return f"values ({_typename(tp)} each)"


def coerce(tp: Any, value: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`, converting lists to tuples."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return _union(tp, value, where)
    if origin is Literal:
        if value in get_args(tp):
            return value
    elif origin in (list, tuple):
        return _sequence(tp, value, where)
    elif origin in (dict, Mapping, typing.Mapping) or tp is dict:
        return _table(tp, value, where)
    elif dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return parse_options(tp, value, where)
    elif _is_scalar(tp, value):
        return float(value) if tp is float else value
    raise ConfigError(f"{where}: expected {_typename(tp)}, got {value!r}")


def _union(tp: Any, value: Any, where: str) -> Any:
    """The first alternative of `tp` that `value` fits (None only where None is one). A table
    for `Options | None` is checked as those options, so its own error says which key."""
    if value is None and type(None) in get_args(tp):
        return None
    tables = [alt for alt in get_args(tp) if dataclasses.is_dataclass(alt)]
    if isinstance(value, Mapping) and len(tables) == 1:
        return coerce(tables[0], value, where)
    for alt in get_args(tp):
        if alt is type(None):
            continue
        try:
            return coerce(alt, value, where)
        except ConfigError:
            continue
    raise ConfigError(f"{where}: expected {_typename(tp)}, got {value!r}")


def _sequence(tp: Any, value: Any, where: str) -> tuple[Any, ...]:
    """A TOML array as a tuple, each item checked (a string is not an array of characters)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected {_typename(tp)}, got {value!r}")
    inner = get_args(tp)[0] if get_args(tp) else Any
    return tuple(coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value))


def _table(tp: Any, value: Any, where: str) -> dict[str, Any]:
    """A TOML table as a dict with string keys, each value checked."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table, got {value!r}")
    args = get_args(tp)
    vt = args[1] if len(args) == 2 else Any
    return {str(k): coerce(vt, v, f"{where}.{k}") for k, v in value.items()}


def _is_scalar(tp: Any, value: Any) -> bool:
    """Whether `value` is the scalar `tp` asks for (TOML's true is not an integer)."""
    if isinstance(value, bool):
        return tp is bool
    if tp is float:
        return isinstance(value, (int, float))
    return isinstance(tp, type) and isinstance(value, tp)


def parse_options(cls: type[T], table: Mapping[str, Any], where: str) -> T:
    """Fill the dataclass `cls` from `table`; `where` names the table, e.g. "build.toml [fetch]".

    Keys may be written with dashes or underscores. Lists become tuples so the
    result is hashable and frozen throughout.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        if key not in fields and f"{key}_" in fields:
            key = f"{key}_"  # a TOML key that is a Python keyword, e.g. `with`
        if key not in fields:
            known = ", ".join(sorted(k.rstrip("_") for k in fields)) or "none"
            raise ConfigError(f"{where}: unknown key '{raw_key}' (known keys: {known})")
        values[key] = coerce(hints[key], value, f"{where} {raw_key}")
    missing = [
        name for name, f in fields.items()
        if name not in values and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key '{missing[0]}'")
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
