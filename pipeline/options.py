"""Options: a frozen dataclass filled from a TOML table, strictly, every problem found in one pass.

The one way respin reads a table: the pipeline's settings, every stage's
options, and any model a stage reads from a file of its own. Unknown keys,
missing keys, wrong types and values a field's own check refuses are each one
line naming the file and the key path (`build.toml [example]: items[0].size:
...`). All of a table's problems are collected (`Problems`) and raised
together as `OptionsError`, whose message is the first and a count of the
rest; a check between keys runs on what passed (`parse_fields`).

A field's own check rides on its annotation: `Annotated[Size, Check(parse_size)]`
reads a string and builds the value, or raises `Invalid` with the reason
(`matching` and `checked` make the common ones); a dict's keys can carry one
too. A check between keys goes in the dataclass's `__post_init__` and raises
`Invalid("why", key="the key to name")`. Nothing else is a refusal.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from respin.pipeline.errors import ConfigError

T = TypeVar("T")


class Invalid(ValueError):
    """A value failed its own check; the message says why in the file's terms.

    `key` names a field of the table being checked when the problem is one key's
    rather than the whole table's.
    """

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Check:
    """A field's own check, as `Annotated[T, Check(fn)]`: the TOML value, once it is of the
    type `accepts` names, becomes `fn(value)` (a T) or fails with Invalid."""

    fn: Callable[[Any], Any]
    accepts: Any = str


def checked(test: Callable[[Any], object], why: str, accepts: Any = str) -> Check:
    """A Check that keeps a value `test` accepts and refuses any other as "'VALUE' WHY"."""
    def fn(value: Any) -> Any:
        if not test(value):
            raise Invalid(f"'{value}' {why}")
        return value

    return Check(fn, accepts)


def matching(pattern: str, why: str) -> Check:
    """A Check that a string matches `pattern` whole (a final newline too: fullmatch)."""
    return checked(re.compile(pattern).fullmatch, why)


class OptionsError(ConfigError):
    """Every problem found in a table, one line each. The message is the first and how many
    more there are, so a caller with one line to give still names one problem exactly."""

    lists_all = ""  # where a user can see every problem, said in the message's tail

    def __init__(self, problems: Sequence[str]) -> None:
        more = len(problems) - 1
        where = f"; {self.lists_all}" if self.lists_all else ""
        tail = f" (and {more} more problem{'s' if more > 1 else ''}{where})" if more else ""
        super().__init__(f"{problems[0]}{tail}")
        self.problems = tuple(problems)


def key_path(parent: str, name: str | int) -> str:
    """The path of `name` under `parent`: `alias[0]`, `alias[0].table`."""
    if isinstance(name, int):
        return f"{parent}[{name}]"
    return f"{parent}.{name}" if parent else name


class Problems:
    """The problems found in one file's table, each a line naming the file and the key."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: list[str] = []

    def line(self, key: str, message: str) -> str:
        return f"{self.source}: {key}: {message}" if key else f"{self.source}: {message}"

    def note(self, key: str, message: str) -> None:
        """Note a problem and go on checking the rest."""
        self.lines.append(self.line(key, message))

    def claim(self, taken: dict[Any, str], value: Any, owner: str, key: str, what: str,
              why: str = "") -> None:
        """Note a problem if an earlier key took `value`; else `owner` takes it."""
        if value in taken:
            self.note(key, f"{what} is already used by {taken[value]}{why}")
        else:
            taken[value] = owner

    def check(self, key: str, fn: Callable[[], T]) -> T | None:
        """What `fn` returns, or None after noting the Invalid it raised (at its key under `key`)."""
        try:
            return fn()
        except Invalid as exc:
            self.note(key_path(key, exc.key) if exc.key else key, str(exc))
            return None

    def raise_any(self, error: type[OptionsError] = OptionsError) -> None:
        if self.lines:
            raise error(self.lines)


class _Noted(Exception):
    """A nested table's problems are noted already; `partial` holds what passed, if anything."""

    def __init__(self, partial: Any = None) -> None:
        super().__init__()
        self.partial = partial


def _typename(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Annotated:
        return _typename(_check_of(tp)[1])
    if origin is Literal:
        return " or ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_typename(a) for a in get_args(tp) if a is not type(None))
    if origin in (list, tuple):
        # In TOML's words: `unset = ["CONFIG_X"]` is an array.
        inner = get_args(tp)[0] if get_args(tp) else Any
        return "an array" if inner is Any else f"an array of {_plural(inner)}"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a table"
    names = {str: "a string", bool: "true or false", int: "an integer", float: "a number"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _plural(tp: Any) -> str:
    """What an array of `tp` holds, in the plural: "strings", "tables", ..."""
    plural = {str: "strings", int: "integers", float: "numbers", bool: "true/false values"}
    if tp in plural:
        return plural[tp]
    if get_origin(tp) in (dict, Mapping, typing.Mapping) or dataclasses.is_dataclass(tp):
        return "tables"
    return f"values ({_typename(tp)} each)"


def _check_of(tp: Any) -> tuple[Check | None, Any]:
    """The Check riding on an Annotated type and the type the TOML value must have first."""
    base, *extras = get_args(tp)
    check = next((e for e in extras if isinstance(e, Check)), None)
    return check, (check.accepts if check else base)


def _coerce(tp: Any, value: Any, key: str, problems: Problems) -> Any:
    """`value` as the annotation `tp` asks (lists as tuples); Invalid if it is not, _Noted if a
    nested table's problems were noted."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        check, accepts = _check_of(tp)
        plain = _coerce(accepts, value, key, problems)
        return check.fn(plain) if check else plain
    if origin in (Union, types.UnionType):
        return _union(tp, value, key, problems)
    if origin in (list, tuple):
        return _sequence(tp, value, key, problems)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise Invalid(f"expected a table, got {value!r}")
        return _nested(tp, value, key, problems)
    if origin in (dict, Mapping, typing.Mapping) or tp is dict:
        return _table(tp, value, key, problems)
    if (origin is Literal and value in get_args(tp)) or (origin is None and _is_scalar(tp, value)):
        return float(value) if tp is float else value
    raise Invalid(f"expected {_typename(tp)}, got {value!r}")


def _union(tp: Any, value: Any, key: str, problems: Problems) -> Any:
    """The first alternative of `tp` that `value` fits (None only where None is one). A value
    for `X | None` is checked as an X, so X's own problem is the one said."""
    if value is None and type(None) in get_args(tp):
        return None
    alternatives = [alt for alt in get_args(tp) if alt is not type(None)]
    tables = [alt for alt in alternatives if dataclasses.is_dataclass(alt)]
    if len(alternatives) == 1 or (isinstance(value, Mapping) and len(tables) == 1):
        return _coerce((tables or alternatives)[0], value, key, problems)
    for alt in alternatives:
        try:
            return _coerce(alt, value, key, Problems(problems.source))
        except (Invalid, _Noted):
            continue
    raise Invalid(f"expected {_typename(tp)}, got {value!r}")


def _sequence(tp: Any, value: Any, key: str, problems: Problems) -> tuple[Any, ...]:
    """A TOML array as a tuple, each item checked (a string is not an array of characters).
    When items fail, _Noted carries the items with None where each failed one was."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise Invalid(f"expected {_typename(tp)}, got {value!r}")
    inner = get_args(tp)[0] if get_args(tp) else Any
    items = tuple(_field(inner, item, key_path(key, i), problems) for i, item in enumerate(value))
    if any(item is _FAILED for item in items):
        raise _Noted(tuple(None if item is _FAILED else item for item in items))
    return items


def _table(tp: Any, value: Any, key: str, problems: Problems) -> dict[str, Any]:
    """A TOML table as a dict with string keys, each value checked."""
    if not isinstance(value, Mapping):
        raise Invalid(f"expected a table, got {value!r}")
    args = get_args(tp)
    kt, vt = args if len(args) == 2 else (str, Any)
    out: dict[Any, Any] = {}
    failed = False
    for k, v in value.items():
        where = key_path(key, str(k))
        # A key's own check (`dict[MacroName, str]`) is noted at that key, as a value's is.
        name = str(k) if kt is str else _field(kt, str(k), where, problems)
        item = _field(vt, v, where, problems)
        if name is _FAILED or item is _FAILED:
            failed = True
        else:
            out[name] = item
    if failed:
        raise _Noted()
    return out


def _is_scalar(tp: Any, value: Any) -> bool:
    """Whether `value` is the scalar `tp` asks for (TOML's true is not an integer)."""
    if isinstance(value, bool):
        return tp is bool
    if tp is float:
        return isinstance(value, (int, float))
    return isinstance(tp, type) and isinstance(value, tp)


_FAILED = object()


def _field(tp: Any, value: Any, key: str, problems: Problems) -> Any:
    """`value` coerced, or _FAILED with the problem noted."""
    try:
        return _coerce(tp, value, key, problems)
    except Invalid as exc:
        problems.note(key_path(key, exc.key) if exc.key else key, str(exc))
    except _Noted:
        pass
    return _FAILED


@dataclass(frozen=True)
class Fields:
    """What a table's keys gave: the value of each key that passed its own checks, and for
    an array of tables that had problems, the tables that passed (None for the others)."""

    values: Mapping[str, Any]
    partial: Mapping[str, Any]
    complete: bool

    def get(self, name: str) -> Any:
        return self.values.get(name, self.partial.get(name))


def _known_keys(cls: type[Any], also: Mapping[str, frozenset[str]]) -> str:
    keys = ", ".join(f.name.rstrip("_") for f in dataclasses.fields(cls) if f.init) or "none"
    return "; ".join([keys, *(f"{what}: {', '.join(sorted(names))}" for what, names in also.items())])


def _key_name(raw: str, fields: Mapping[str, dataclasses.Field[Any]]) -> str:
    """The field a TOML key names: dashes read as underscores; a Python keyword (`with`) as `with_`."""
    key = raw.replace("-", "_")
    return f"{key}_" if key not in fields and f"{key}_" in fields else key


def parse_fields(cls: type[Any], table: Mapping[str, Any], problems: Problems, key: str = "",
                 also: Mapping[str, frozenset[str]] | None = None) -> Fields:
    """Check each key of `table` against the dataclass `cls`, noting every problem.

    `key` is the table's path in the file ("" for the table `problems.source`
    names); `also`: keys other readers own, accepted and left out, by what they are
    ("staging keys": {...}), as the unknown-key message lists them.
    """
    also = also or {}
    others = frozenset().union(*also.values())
    hints = get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    partial: dict[str, Any] = {}
    # Unknown keys first: a misspelt key explains a "missing" one said after it.
    unknown = [raw for raw in table if _key_name(str(raw), fields) not in fields
               and _key_name(str(raw), fields) not in others]
    for raw in unknown:
        problems.note(key_path(key, str(raw)), f"unknown key (known keys: {_known_keys(cls, also)})")
    complete = not unknown
    for raw, value in table.items():
        name = _key_name(str(raw), fields)
        if name not in fields:
            continue
        try:
            values[name] = _coerce(hints[name], value, key_path(key, str(raw)), problems)
        except Invalid as exc:
            problems.note(key_path(key, str(raw)), str(exc))
            complete = False
        except _Noted as exc:
            if exc.partial is not None:
                partial[name] = exc.partial
            complete = False
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and name not in values and name not in partial and not any(
                _key_name(str(r), fields) == name for r in table):
            problems.note(key_path(key, name.rstrip("_")), "missing required key")
            complete = False
    return Fields(values, partial, complete)


def build(cls: type[T], fields: Fields, problems: Problems, key: str = "") -> T | None:
    """The dataclass from fields that all passed, or None (a refusal by the dataclass itself,
    the Invalid a check between keys in `__post_init__` raises, is noted)."""
    if not fields.complete:
        return None
    return problems.check(key, lambda: cls(**fields.values))


def _nested(cls: type[Any], table: Mapping[str, Any], key: str, problems: Problems) -> Any:
    fields = parse_fields(cls, table, problems, key)
    built = build(cls, fields, problems, key)
    if built is None:
        raise _Noted()
    return built


def parse_options(cls: type[T], table: Mapping[str, Any], where: str) -> T:
    """Fill the dataclass `cls` from `table`, or raise OptionsError with every problem.

    `where` names the table, e.g. "build.toml [fetch]". Keys may be written with
    dashes or underscores. Lists become tuples so the result is frozen throughout.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    problems = Problems(where)
    built = build(cls, parse_fields(cls, table, problems), problems)
    problems.raise_any()
    assert built is not None
    return built
