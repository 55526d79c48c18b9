"""pipeline.options: the one reader of TOML tables, for settings, stage options and models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import pytest

from respin.pipeline.errors import ConfigError
from respin.pipeline.options import (
    Check,
    Invalid,
    OptionsError,
    Problems,
    checked,
    matching,
    parse_fields,
    parse_options,
)


def _size(text: str) -> int:
    """`12k` as 12288: a field's own check that turns the TOML string into a number."""
    units = {"": 1, "k": 1024, "m": 1024**2}
    number, unit = text.rstrip("km"), text[len(text.rstrip("km")):]
    if not number.isdigit():
        raise Invalid(f"'{text}' is not a size (a number, then k or m)")
    return int(number) * units[unit]


Size = Annotated[int, Check(_size)]


@dataclass(frozen=True)
class Part:
    name: str
    size: Size = 0


@dataclass(frozen=True)
class Options:
    label: str
    mode: Literal["fast", "small"] = "fast"
    limit: Size | None = None
    with_: bool = False
    parts: tuple[Part, ...] = ()

    def __post_init__(self) -> None:
        if self.limit is not None and sum(p.size for p in self.parts) > self.limit:
            raise Invalid("the parts are larger than this", key="limit")


def test_a_fields_own_check_builds_the_typed_value() -> None:
    opts = parse_options(Options, {"label": "x", "limit": "2k", "with": True,
                                   "parts": [{"name": "a", "size": "1k"}]}, "f.toml [t]")
    assert opts == Options("x", "fast", 2048, True, (Part("a", 1024),))


def test_every_problem_is_found_in_one_pass_each_naming_its_key() -> None:
    table = {"lable": "x", "mode": "slow", "limit": "lots",
             "parts": [{"name": "a", "size": "1k"}, {"size": 3}, {"name": "c", "colour": "red"}]}
    with pytest.raises(OptionsError) as info:
        parse_options(Options, table, "f.toml [t]")
    assert list(info.value.problems) == [
        "f.toml [t]: lable: unknown key (known keys: label, mode, limit, with, parts)",
        "f.toml [t]: mode: expected 'fast' or 'small', got 'slow'",
        "f.toml [t]: limit: 'lots' is not a size (a number, then k or m)",
        "f.toml [t]: parts[1].size: expected a string, got 3",
        "f.toml [t]: parts[1].name: missing required key",
        "f.toml [t]: parts[2].colour: unknown key (known keys: name, size)",
        "f.toml [t]: label: missing required key",
    ]
    # One line for a caller that has one to give: the first, and how many more.
    assert str(info.value) == f"{info.value.problems[0]} (and 6 more problems)"
    assert isinstance(info.value, ConfigError) and info.value.exit_code == 3


def test_a_check_between_keys_names_the_key_it_is_about() -> None:
    with pytest.raises(OptionsError, match=r"^f.toml \[t\]: limit: the parts are larger than this$"):
        parse_options(Options, {"label": "x", "limit": "1k", "parts": [{"name": "a", "size": "2k"}]},
                      "f.toml [t]")


def test_an_array_with_bad_items_keeps_the_good_ones_for_checks_between_keys() -> None:
    problems = Problems("f.toml")
    fields = parse_fields(Options, {"label": "x", "parts": [{"name": "a"}, {"name": 1}]}, problems, "t")
    assert not fields.complete
    assert fields.get("parts") == (Part("a"), None)
    assert problems.lines == ["f.toml: t.parts[1].name: expected a string, got 1"]


def test_keys_another_reader_owns_are_left_to_it_and_listed() -> None:
    problems = Problems("f.toml")
    fields = parse_fields(Part, {"name": "a", "root": "/x", "rooot": 1}, problems,
                          also={"staging keys": frozenset({"root"})})
    assert fields.values == {"name": "a"}
    assert problems.lines == ["f.toml: rooot: unknown key (known keys: name, size; staging keys: root)"]


def test_a_string_is_not_an_array_and_true_is_not_an_integer() -> None:
    @dataclass(frozen=True)
    class Counts:
        names: tuple[str, ...] = ()
        jobs: int = 1

    with pytest.raises(OptionsError) as info:
        parse_options(Counts, {"names": "abc", "jobs": True}, "f.toml [c]")
    assert info.value.problems == ("f.toml [c]: names: expected an array of strings, got 'abc'",
                                   "f.toml [c]: jobs: expected an integer, got True")


@dataclass(frozen=True)
class _Macros:
    define: dict[Annotated[str, matching(r"[a-z_]+", "is not a macro name")], str]
    names: tuple[Annotated[str, checked(str.isupper, "is not upper case")], ...] = ()


def test_a_dict_key_carries_its_own_check_and_every_problem_is_named() -> None:
    assert parse_options(_Macros, {"define": {"dist": ".x"}}, "f.toml [t]").define == {"dist": ".x"}
    with pytest.raises(OptionsError) as info:
        parse_options(_Macros, {"define": {"dist\n": ".x", "ok": 1}, "names": ["A", "b"]}, "f.toml [t]")
    assert info.value.problems == ("f.toml [t]: define.dist\n: 'dist\n' is not a macro name",
                                   "f.toml [t]: define.ok: expected a string, got 1",
                                   "f.toml [t]: names[1]: 'b' is not upper case")


@dataclass(frozen=True)
class _Buggy:
    n: int = 0

    def __post_init__(self) -> None:
        raise ValueError("a bug, not a refusal")


def test_a_plain_value_error_in_a_check_is_a_bug_not_a_line_of_the_file() -> None:
    with pytest.raises(ValueError, match="a bug"):
        parse_options(_Buggy, {}, "f.toml [t]")


def test_the_kernel_stages_refuse_bad_values_by_type_all_in_one_pass() -> None:
    from respin.stages.kernel.fetch import FetchStage
    from respin.stages.kernel.inject import InjectStage
    from respin.stages.kernel.rebuild import RebuildStage

    with pytest.raises(OptionsError) as info:
        parse_options(RebuildStage.Options, {"with": ["a b"], "define": {"x;y": "1"}, "koji_poll": 0,
                                             "backend": "koji"}, "k.toml [rebuild]")
    assert info.value.problems == (
        "k.toml [rebuild]: with[0]: 'a b' is not an rpmbuild --with/--without switch name",
        "k.toml [rebuild]: define.x;y: 'x;y' is not a macro name",
        "k.toml [rebuild]: koji_poll: 0.0 is not positive")
    with pytest.raises(OptionsError, match=r"\[rebuild\]: koji_target: needed with backend"):
        parse_options(RebuildStage.Options, {"backend": "koji"}, "k.toml [rebuild]")
    with pytest.raises(OptionsError) as info:
        parse_options(InjectStage.Options, {"patch": "../x", "buildid": "x", "packager": "me"},
                      "k.toml [inject]")
    assert [p.split(": ")[1] for p in info.value.problems] == ["patch", "buildid", "packager"]
    with pytest.raises(OptionsError) as info:
        parse_options(FetchStage.Options, {"srpm": " ", "sha256": "00"}, "k.toml [fetch]")
    assert [p.split(": ")[1] for p in info.value.problems] == ["srpm", "sha256"]
