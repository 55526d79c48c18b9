"""The check before the build, against the real Linux 6.1 tree's own kconfig.

What respin predicts from kconfiglib must be what the tree's `make
listnewconfig` and `make olddefconfig` then do: the symbols a change opens
with no value (Fedora's process_configs.sh -n refuses them) and the values
oldconfig moves (its -c refuses those). Each case runs both and compares.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from respin.stages.kernel.lib import kconfig, kvalidate, rpmpkg
from respin.stages.kernel.lib.kconfig import Request
from respin.stages.kernel.lib.validate import Moved

TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not TARBALL.is_file(), reason="Debian's linux-source-6.1 is not installed"),
    pytest.mark.skipif(shutil.which("make") is None or shutil.which("gcc") is None,
                       reason="make and gcc build the tree's kconfig"),
]


def make(tree: Path, *args: str, config: Path) -> str:
    return subprocess.run(["make", "-s", "ARCH=x86_64", f"KCONFIG_CONFIG={config}", *args], cwd=tree,
                          capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL).stdout


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("linux")
    subprocess.run(["tar", "-xJf", str(TARBALL), "-C", str(where)], check=True)
    tree = next(where.iterdir())
    # As prep leaves it: the builder's, which runs the tree's $(shell,...) probes as root.
    rpmpkg.give_to_builder(tree, 0o755)
    return tree


@pytest.fixture(scope="module")
def base(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A complete x86_64 config, as a distribution ships one: tinyconfig, then olddefconfig."""
    config = tmp_path_factory.mktemp("base") / "config"
    make(tree, "tinyconfig", config=config)
    make(tree, "olddefconfig", config=config)
    assert make(tree, "listnewconfig", config=config).strip() == ""
    return config.read_text()


@pytest.fixture(scope="module")
def kconf(tree: Path) -> object:
    return kvalidate.load(tree, "x86_64")


def predicted(kconf: object, text: str, tmp_path: Path) -> tuple[dict[str, str | None], Moved]:
    probe = tmp_path / "probe.config"
    probe.write_text(text)
    kconf.load_config(str(probe), replace=True)  # type: ignore[attr-defined]
    return kvalidate.new_symbols(kconf), kvalidate.changed_values(kconf, text)


def observed(tree: Path, text: str, tmp_path: Path, *extra: str
             ) -> tuple[dict[str, str | None], Moved]:
    """What the tree's own kconfig does with `text`: listnewconfig, and the values olddefconfig
    moves among those both have (the rule of process_configs.sh -c)."""
    config = tmp_path / "observed.config"
    config.write_text(text)
    new = {}
    for line in make(tree, *extra, "listnewconfig", config=config).splitlines():
        name, _, value = line.partition("=")
        new[name] = None if value == "n" else value
    make(tree, *extra, "olddefconfig", config=config)
    after = kconfig.parse(config.read_text())
    moved = {name: (value, after[name]) for name, value in kconfig.parse(text).items()
             if name in after and after[name] != value}
    return new, moved


CHANGES = {
    # IKCONFIG opens IKCONFIG_PROC (the issue's case) once /proc exists.
    "ikconfig": [Request("CONFIG_PROC_FS", "y"), Request("CONFIG_IKCONFIG", "y")],
    # Networking opens a few dozen symbols, a choice among them.
    "net": [Request("CONFIG_NET", "y")],
    # A symbol that selects others moves their "is not set" to y.
    "select": [Request("CONFIG_BLK_DEV_INITRD", "y")],
}


DUMMY = "scripts/dummy-tools/"


@pytest.fixture(scope="module")
def dummy_kconf(tree: Path) -> object:
    return kvalidate.load(tree, "x86_64", DUMMY)


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_prediction_with_the_dummy_tools_matches_make_with_them(change: str, tree: Path, base: str,
                                                                dummy_kconf: object, tmp_path: Path) -> None:
    # Fedora's process_configs.sh runs make with CROSS_COMPILE=scripts/dummy-tools/, whose
    # gcc claims to be GCC 20 with every option: the check predicts with the same tools.
    text = kconfig.apply(base, CHANGES[change])
    new, moved = predicted(dummy_kconf, text, tmp_path)
    assert (new, moved) == observed(tree, text, tmp_path, f"CROSS_COMPILE={DUMMY}")
    assert moved.get("CONFIG_GCC_VERSION", (None, None))[1] == "200000"  # type: ignore[index]


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_prediction_matches_the_trees_own_kconfig(change: str, tree: Path, base: str, kconf: object,
                                                  tmp_path: Path) -> None:
    text = kconfig.apply(base, CHANGES[change])
    new, moved = predicted(kconf, text, tmp_path)
    real_new, real_moved = observed(tree, text, tmp_path)
    assert new == real_new
    assert moved == real_moved
    assert new or moved  # each change opens or moves something, or the case proves nothing


def test_the_issue_case_names_ikconfig_proc(base: str, kconf: object, tmp_path: Path) -> None:
    new, _ = predicted(kconf, kconfig.apply(base, CHANGES["ikconfig"]), tmp_path)
    assert "CONFIG_IKCONFIG_PROC" in new


def test_a_module_is_enough_for_a_bool_that_depends_on_a_tristate(base: str, kconf: object,
                                                                   tmp_path: Path) -> None:
    # IKCONFIG_PROC (bool) depends on IKCONFIG (tristate): with modules on, m satisfies it,
    # so resolve adds m, not y; without modules a tristate can only be y.
    for modules, weakest in (("y", "m"), (None, "y")):
        text = kconfig.apply(base, [Request("CONFIG_PROC_FS", "y"), Request("CONFIG_MODULES", modules),
                                    Request("CONFIG_IKCONFIG_PROC", "y")])
        probe = tmp_path / "p.config"
        probe.write_text(text)
        (verdict,) = kvalidate.judge(kconf, probe, [Request("CONFIG_IKCONFIG_PROC", "y")])
        assert not verdict.survives
        assert verdict.needs == [f"CONFIG_IKCONFIG={weakest}"]


def test_the_oldconfig_fallback_finds_the_same(tree: Path, base: str, kconf: object, tmp_path: Path) -> None:
    # Where kconfiglib cannot read a tree, config asks the tree's own make: same answers.
    import logging

    from respin.pipeline.stage import Context
    from respin.stages.kernel.lib.validate import make_listnewconfig, make_olddefconfig, moved

    ctx = Context(workdir=tmp_path, source=tmp_path / "kernel.toml", settings={}, stagedir=tmp_path,
                  log=logging.getLogger("test"))
    dot = tree / ".config"  # where the stage has make write it: in the builder's tree
    for change in CHANGES.values():
        text = kconfig.apply(base, change)
        new, want_moved = predicted(kconf, text, tmp_path)
        assert make_listnewconfig(ctx, tree, dot, "x86_64", text) == new
        after = make_olddefconfig(ctx, tree, dot, "x86_64", text, strict=True)
        assert after is not None and moved(text, after) == want_moved
    dot.unlink()
