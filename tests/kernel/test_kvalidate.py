"""kconfiglib answers, on an inline Kconfig, whether requested values survive oldconfig."""

from __future__ import annotations

from pathlib import Path

import pytest
from respin_cli import REPO

from respin.pipeline.errors import InputError
from respin.stages.kernel.lib import kvalidate, validate
from respin.stages.kernel.lib.kconfig import Request, arch_of, make_arch

KCONFIG = """\
mainmenu "test"
config A
\tbool "A"
config B
\tbool "B"
\tdepends on A
config C
\tbool "C"
\tdepends on !A
config HZ
\tint "HZ"
\trange 100 1000
\tdefault 250
config LOCALVERSION
\tstring "local version"
"""


@pytest.fixture
def kconf(tmp_path: Path) -> object:
    (tmp_path / "Kconfig").write_text(KCONFIG)
    return kvalidate.load(tmp_path, "x86_64")


def judge(kconf: object, tmp_path: Path, config: str, *reqs: Request) -> list[validate.Verdict]:
    path = tmp_path / "probe.config"
    path.write_text(config)
    return kvalidate.judge(kconf, path, list(reqs))


def test_met_dependency_survives(kconf: object, tmp_path: Path) -> None:
    (v,) = judge(kconf, tmp_path, "CONFIG_A=y\nCONFIG_B=y\n", Request("CONFIG_B", "y"))
    assert v.survives and v.value == "y"


def test_unmet_dependency_is_named(kconf: object, tmp_path: Path) -> None:
    (v,) = judge(kconf, tmp_path, "CONFIG_B=y\n", Request("CONFIG_B", "y"))
    assert not v.survives and v.needs == ["CONFIG_A=y"]
    assert v.explain() == "CONFIG_B=y needs CONFIG_A=y"
    assert validate.resolvable(v.needs) == [Request("CONFIG_A", "y")]


def test_negative_dependency_cannot_be_resolved(kconf: object, tmp_path: Path) -> None:
    (v,) = judge(kconf, tmp_path, "CONFIG_A=y\nCONFIG_C=y\n", Request("CONFIG_C", "y"))
    assert not v.survives and v.needs == ["(!A)"]
    assert validate.resolvable(v.needs) == []


def test_ints_strings_and_unknown_symbols(kconf: object, tmp_path: Path) -> None:
    verdicts = judge(kconf, tmp_path, 'CONFIG_HZ=5000\nCONFIG_LOCALVERSION="-x"\n',
                     Request("CONFIG_HZ", "5000"), Request("CONFIG_LOCALVERSION", '"-x"'),
                     Request("CONFIG_NOPE", "y"))
    assert [v.survives for v in verdicts] == [False, True, False]
    assert verdicts[0].value == "250"  # out of range: oldconfig falls back to the default
    assert verdicts[2].unknown


def test_unreadable_kconfig_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "Kconfig").write_text('source "missing/Kconfig"\n')
    with pytest.raises(InputError, match="kconfiglib cannot read"):
        kvalidate.load(tmp_path, "x86_64")


def test_arch_from_the_first_line() -> None:
    assert arch_of("# i386\nCONFIG_A=y\n", "x86_64") == "i386"
    assert arch_of("CONFIG_A=y\n", "x86_64") == "x86_64"
    assert arch_of("# powerpc\nCONFIG_A=y\n", "x86_64") == "powerpc"
    assert [make_arch(a) for a in ("i686", "x86_64", "aarch64", "ppc64le", "s390x")] == \
        ["i386", "x86_64", "arm64", "powerpc", "s390"]


def test_kconfig_files_follow_sources_for_every_arch(tmp_path: Path) -> None:
    from respin.stages.kernel.prep import archive_kconfig, kconfig_files

    (tmp_path / "Kconfig").write_text('source "arch/$(SRCARCH)/Kconfig"\nsource "init/Kconfig"\n')
    for arch in ("x86", "arm64"):
        (tmp_path / "arch" / arch).mkdir(parents=True)
        (tmp_path / "arch" / arch / "Kconfig").write_text('rsource "Kconfig.cpu"\n')
        (tmp_path / "arch" / arch / "Kconfig.cpu").write_text("config CPU\n\tbool\n")
    (tmp_path / "init").mkdir()
    (tmp_path / "init" / "Kconfig").write_text("config A\n\tbool\n")
    (tmp_path / "init" / "Kconfig.unused").write_text("config UNUSED\n\tbool\n")
    assert kconfig_files(tmp_path) == ["Kconfig", "arch/arm64/Kconfig", "arch/arm64/Kconfig.cpu",
                                       "arch/x86/Kconfig", "arch/x86/Kconfig.cpu", "init/Kconfig"]
    archive_kconfig(tmp_path, tmp_path / "a.tar")
    first = (tmp_path / "a.tar").read_bytes()
    archive_kconfig(tmp_path, tmp_path / "a.tar")
    assert (tmp_path / "a.tar").read_bytes() == first  # same tree, same bytes


def test_bare_modules_keyword_of_linux_6_is_read(tmp_path: Path) -> None:
    # Linux 6.x marks MODULES with a bare `modules`; kconfiglib 14 knows only `option modules`.
    (tmp_path / "Kconfig").write_text('config MODULES\n\tbool "modules"\n\tmodules\n'
                                      'config FOO\n\ttristate "foo"\n\tdepends on MODULES\n')
    kconf = kvalidate.load(tmp_path, "x86_64")
    assert kconf.modules.name == "MODULES"  # type: ignore[attr-defined]
    [verdict] = judge(kconf, tmp_path, "CONFIG_MODULES=y\nCONFIG_FOO=m\n", Request("CONFIG_FOO", "m"))
    assert verdict.survives


def test_unknown_kconfig_syntax_is_a_clear_error_the_stage_can_fall_back_on(tmp_path: Path) -> None:
    # A keyword newer than kconfiglib (Linux 6.18's `transitional`): one line, and the
    # config stage then uses the tree's own oldconfig.
    (tmp_path / "Kconfig").write_text("config OLD_NAME\n\tbool\n\ttransitional\n")
    with pytest.raises(InputError, match="kconfiglib cannot read"):
        kvalidate.load(tmp_path, "x86_64")


def test_kconfig_that_probes_the_compiler_is_archived_and_read(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # The current fixture's Kconfig.include runs scripts/cc-version.sh, which runs the
    # min-tool-version.sh next to itself, and tries a compiler flag in the current dir.
    import shutil
    import tarfile

    from respin.stages.kernel.prep import archive_kconfig, kconfig_files

    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed: the fixture's Kconfig needs a C compiler, as the kernel's does")
    tree = REPO / "fixtures" / "kernel-current" / "linux-6.1.0"
    names = kconfig_files(tree)
    assert {"scripts/Kconfig.include", "scripts/cc-version.sh", "scripts/min-tool-version.sh"} <= set(names)
    archive_kconfig(tree, tmp_path / "k.tar")
    with tarfile.open(tmp_path / "k.tar") as tar:
        modes = {m.name: m.mode for m in tar}
        tar.extractall(tmp_path / "copy")
    assert modes["scripts/cc-version.sh"] == modes["scripts/min-tool-version.sh"] == 0o755
    assert modes["Kconfig"] == 0o644
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    kconf = kvalidate.load(tmp_path / "copy", "x86_64")
    assert "IKCONFIG_PROC" in kconf.syms  # type: ignore[attr-defined]
    assert list(cwd.iterdir()) == [] and Path.cwd() == cwd
    assert not list((tmp_path / "copy").glob(".tmp_*"))
    monkeypatch.setenv("CC", "respin-no-such-cc")
    with pytest.raises(InputError, match="C compiler 'respin-no-such-cc' not found"):
        kvalidate.load(tmp_path / "copy", "x86_64")


def test_out_of_range_names_the_range(kconf: object, tmp_path: Path) -> None:
    (v,) = judge(kconf, tmp_path, "CONFIG_HZ=5000\n", Request("CONFIG_HZ", "5000"))
    assert not v.survives
    assert v.explain() == "CONFIG_HZ=5000 would end up as 250 after oldconfig (its range is 100..1000)"


CHOICE = """\
mainmenu "test"
choice
\tprompt "Timer frequency"
\tdefault HZ_250
config HZ_100
\tbool "100 HZ"
config HZ_250
\tbool "250 HZ"
endchoice
"""


def test_a_choice_conflict_names_the_member_to_unset(tmp_path: Path) -> None:
    (tmp_path / "Kconfig").write_text(CHOICE)
    kconf = kvalidate.load(tmp_path, "x86_64")
    # HZ_100 asked for, HZ_250 still chosen later in the file: the later one wins.
    (v,) = judge(kconf, tmp_path, "CONFIG_HZ_100=y\nCONFIG_HZ_250=y\n", Request("CONFIG_HZ_100", "y"))
    assert not v.survives
    assert "unset CONFIG_HZ_250" in v.explain()
    (v,) = judge(kconf, tmp_path, "CONFIG_HZ_100=y\n# CONFIG_HZ_250 is not set\n",
                 Request("CONFIG_HZ_100", "y"))
    assert v.survives


@pytest.fixture
def builder_tree(tmp_path: Path) -> tuple[Path, int]:
    """A tree the builder owns, as prep leaves one, and the builder's uid (gid alike): for
    the tests of what root runs as the builder."""
    import os

    from respin.stages.kernel.lib import rpmpkg

    ident = rpmpkg.builder()
    if os.geteuid() != 0 or ident is None:
        pytest.skip("needs root: the builder identity is what root drops to")
    tree = tmp_path / "tree"
    tree.mkdir()
    rpmpkg.give_to_builder(tree, 0o755)
    return tree, ident[0]


@pytest.mark.root
def test_kconfig_shell_runs_as_the_builder_and_leaves_nothing_running(builder_tree: tuple[Path, int]) -> None:
    # $(shell,...) runs the package's commands: as root, they run as the builder, in a pid
    # namespace that ends with them, and what they plant is read without following links.
    import time

    tree, uid = builder_tree
    (tree / "Kconfig").write_text(
        'config WHO\n\tstring "who"\n\tdefault "$(shell,id -u):$(shell,id -g)"\n'
        'config LATE\n\tstring "late"\n\tdefault "$(shell,(sleep 2; touch late) >/dev/null 2>&1 &)"\n')
    kconf = kvalidate.load(tree, "x86_64")
    assert kconf.syms["WHO"].str_value == f"{uid}:{uid}"  # type: ignore[attr-defined]
    time.sleep(3)
    assert not (tree / "late").exists()
    # A link planted by a command, read as root: refused, its target's text never shown.
    (tree / "Kconfig").write_text('config X\n\tstring "x"\n\tdefault "$(shell,ln -s /etc/shadow Kconfig.x)"\n'
                                  'source "Kconfig.x"\n')
    with pytest.raises(InputError, match="kconfiglib cannot read") as err:
        kvalidate.load(tree, "x86_64")
    assert "root:" not in str(err.value) and str(err.value).count("\n") == 0


@pytest.mark.root
def test_the_trees_own_make_runs_as_the_builder(builder_tree: tuple[Path, int], tmp_path: Path) -> None:
    # The oldconfig fallback runs the package's Makefile: as root, as the builder; a link it
    # leaves where the config was is refused unread.
    import logging

    from respin.pipeline.stage import Context
    from respin.stages.kernel.lib.validate import make_olddefconfig

    tree, uid = builder_tree
    (tree / "Makefile").write_text("olddefconfig:\n\trm -f $(KCONFIG_CONFIG); "
                                   "echo CONFIG_WHO=$$(id -u) > $(KCONFIG_CONFIG)\n"
                                   "oldconfig:\n\tln -sf /etc/shadow $(KCONFIG_CONFIG)\n")
    ctx = Context(workdir=tmp_path, source=tmp_path / "kernel.toml", settings={}, stagedir=tmp_path,
                  log=logging.getLogger("test"))
    after = make_olddefconfig(ctx, tree, tree / ".config", "x86_64", "CONFIG_A=y\n", strict=True)
    assert after == f"CONFIG_WHO={uid}\n"
    (tree / "Makefile").write_text("olddefconfig:\n\tln -sf /etc/shadow $(KCONFIG_CONFIG)\n")
    with pytest.raises(InputError, match="config is a symlink") as err:
        make_olddefconfig(ctx, tree, tree / ".config", "x86_64", "CONFIG_A=y\n", strict=True)
    assert "root:" not in str(err.value)


def _forge_a_reply() -> str:
    """Package code in the builder's child writing the pipe itself: a pickle that would run
    `touch` in whoever unpickles it, on every descriptor the child has open."""
    import contextlib
    import os
    import stat

    payload = b"cos\nsystem\n(S'touch /tmp/respin-forged-reply'\ntR."
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the reply's pipe among them (not stdio's)
            if int(name) > 2 and stat.S_ISFIFO(os.fstat(int(name)).st_mode):
                os.write(int(name), payload)
    return "done"


@pytest.mark.root
def test_the_builder_s_reply_is_data_never_code(builder_tree: tuple[Path, int]) -> None:
    from respin.pipeline.errors import CommandError
    from respin.stages.kernel.lib import rpmpkg

    forged = Path("/tmp/respin-forged-reply")
    forged.unlink(missing_ok=True)
    with pytest.raises(CommandError, match="no answer respin can read"):
        rpmpkg.call_as_builder(_forge_a_reply)
    assert not forged.exists()
    # A respin error in the child comes back as its class and line; other data as it was.
    with pytest.raises(InputError, match=r"^bad spec$"):
        rpmpkg.call_as_builder(_raise_input_error)
    assert rpmpkg.call_as_builder(lambda: ["text", 3]) == ["text", 3]


def _raise_input_error() -> None:
    raise InputError("bad spec")


@pytest.mark.root
def test_the_oldconfig_fallback_copies_preps_tree_as_the_builder(builder_tree: tuple[Path, int],
                                                                  tmp_path: Path) -> None:
    # config's make runs in its own copy of prep's tree, and the copy is made by the builder:
    # a file there only root may read stays unread, whatever the tree holds; prep's tree is
    # left as it was.
    import logging
    import os

    from respin.pipeline.errors import CommandError
    from respin.pipeline.stage import Context
    from respin.stages.kernel.config import ConfigStage

    tree, uid = builder_tree
    (tree / "Makefile").write_text("olddefconfig:\n\trm -f $(KCONFIG_CONFIG); "
                                   "echo CONFIG_WHO=$$(id -u) > $(KCONFIG_CONFIG)\nlistnewconfig:\n\t@true\n")
    stagedir = tmp_path / "stages/config"
    stagedir.mkdir(parents=True)
    ctx = Context(workdir=tmp_path, source=tmp_path / "kernel.toml", settings={}, stagedir=stagedir,
                  log=logging.getLogger("test"))
    stage = ConfigStage(ConfigStage.Options(set={"CONFIG_WHO": str(uid)}))
    reqs = [Request("CONFIG_WHO", str(uid))]
    before = sorted(p.name for p in tree.iterdir())
    verdicts = stage._with_make(ctx, tree, {"kernel-x86_64.config": "CONFIG_WHO=1\n"}, reqs,
                                         "kernel.toml [config]", strict=True)
    assert verdicts == {"CONFIG_WHO": "survives oldconfig"}  # make ran as the builder, in the copy
    assert sorted(p.name for p in tree.iterdir()) == before and not (tree / ".config").exists()
    secret = tree / "secret"
    secret.write_text("root's own\n")
    os.chmod(secret, 0o600)  # root's, in the builder's tree
    with pytest.raises(CommandError, match="copy of the prepared tree") as err:
        stage._with_make(ctx, tree, {"kernel-x86_64.config": "CONFIG_WHO=1\n"}, reqs,
                                  "kernel.toml [config]", strict=True)
    assert "root's own" not in str(err.value)
    assert not [p for p in stagedir.rglob("*")]
