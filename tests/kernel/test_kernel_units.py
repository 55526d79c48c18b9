"""Kernel helpers on inline text: %prep points, .config edits, spec injection."""

from __future__ import annotations

import dataclasses
import datetime
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from respin.pipeline.errors import ConfigError, InputError
from respin.stages.kernel.inject import Injection, default_patch_name, inject_text, marked_release
from respin.stages.kernel.lib import hostneeds, kconfig
from respin.stages.kernel.lib.configfiles import configs_for, used_configs
from respin.stages.kernel.lib.spectext import find_prep_point
from respin.stages.kernel.prep import hooked_spec

SPEC = """\
Name: kernel
Version: 2.6.27.5
Release: 117%{?buildid}%{?dist}
Summary: The Linux kernel
License: GPLv2
# % define buildid .local
%define with_utrace 1
Source0: linux-2.6.27.tar.bz2
Patch0: patch-2.6.27.5
Patch10: linux-2.6-utrace.patch

%description
A kernel.

%prep
ApplyPatch()
{
  patch -p1 -F1 -s < $RPM_SOURCE_DIR/$1
}
cd linux
ApplyPatch patch-2.6.27.5
%if %{with_utrace}
ApplyPatch linux-2.6-utrace.patch
%endif

# END OF PATCH APPLICATIONS

for i in kernel-*.config; do echo $i; done

%build
make

%changelog
* Fri Nov 07 2008 Some One <someone@example.org> 2.6.27.5-117
- 2.6.27.5
"""


def test_prep_point_skips_the_function_definition_and_closes_the_conditional() -> None:
    lines = SPEC.splitlines()
    point = find_prep_point(lines, "kernel.spec")
    assert lines[point.last_apply] == "ApplyPatch linux-2.6-utrace.patch"
    assert lines[point.after_last_apply] == "%endif"
    assert lines[point.hook_at] == "# END OF PATCH APPLICATIONS"
    assert point.command == "ApplyPatch"


def test_no_patch_application_is_a_clear_error() -> None:
    spec = SPEC.replace("ApplyPatch patch-2.6.27.5\n", "").replace("ApplyPatch linux-2.6-utrace.patch\n", "")
    with pytest.raises(InputError, match="applies no patch"):
        find_prep_point(spec.splitlines(), "kernel.spec")


def test_hook_follows_the_end_marker(tmp_path: object) -> None:
    from pathlib import Path

    text, after = hooked_spec(SPEC, Path("/w/snap shot%x"), "kernel.spec")
    lines = text.splitlines()
    assert lines[after - 1] == "# END OF PATCH APPLICATIONS"
    assert lines[after + 1] == "mkdir -p '/w/snap shot%%x'"
    assert "exit 0" in lines[after:after + 40]


def _inj() -> Injection:
    return Injection(patch="linux-2.6-config-respin.patch", changelog="Add the config patch",
                     buildid=".respin", packager="respin <respin@localhost>",
                     when=datetime.date(2008, 11, 8), evr="2.6.27.5-117.respin")


def test_inject_places_tag_apply_line_buildid_and_changelog() -> None:
    text, number = inject_text(SPEC, _inj(), "kernel.spec")
    assert number == 11
    lines = text.splitlines()
    assert "Patch11: linux-2.6-config-respin.patch" in lines
    assert lines.index("Patch11: linux-2.6-config-respin.patch") == lines.index(
        "Patch10: linux-2.6-utrace.patch") + 1
    i = lines.index("ApplyPatch linux-2.6-config-respin.patch")
    assert lines[i - 1] == "%endif" and i < lines.index("# END OF PATCH APPLICATIONS")
    assert lines[lines.index("# % define buildid .local") + 1] == "%define buildid .respin"
    cl = lines.index("%changelog")
    assert lines[cl + 1].startswith("* Sat Nov 08 2008 respin <respin@localhost> - 2.6.27.5-117.respin") or \
        lines[cl + 1].startswith("* Sat Nov 08 2008 respin <respin@localhost> 2.6.27.5-117.respin")
    assert lines[cl + 2] == "- Add the config patch"


def test_inject_twice_changes_nothing() -> None:
    once, n1 = inject_text(SPEC, _inj(), "kernel.spec")
    twice, n2 = inject_text(once, _inj(), "kernel.spec")
    assert (twice, n2) == (once, n1)


def test_patch999999_numbering_and_release_suffix() -> None:
    spec = SPEC.replace("Patch10: linux-2.6-utrace.patch", "Patch999999: linux-kernel-test.patch")
    spec = spec.replace("Release: 117%{?buildid}%{?dist}", "Release: 117%{?dist}")
    spec = spec.replace("# % define buildid .local\n", "")
    text, number = inject_text(spec, _inj(), "kernel.spec")
    assert number == 1000000
    assert "Release: 117.respin%{?dist}" in text.splitlines()


def test_default_patch_name() -> None:
    assert default_patch_name("2.6.27.5") == "linux-2.6-config-respin.patch"


@pytest.mark.parametrize(("value", "existing", "line"), [
    ("y", None, "CONFIG_X=y"),
    ("m", "y", "CONFIG_X=m"),
    ("n", "y", "# CONFIG_X is not set"),
    (True, None, "CONFIG_X=y"),
    (False, "y", "# CONFIG_X is not set"),
    (1000, "250", "CONFIG_X=1000"),
    ("0x10", "0x0", "CONFIG_X=0x10"),
    ("-respin", '""', 'CONFIG_X="-respin"'),
    ("100", '"x"', 'CONFIG_X="100"'),
    ('"quoted \\" ok"', None, 'CONFIG_X="quoted \\" ok"'),
    ('a"b', None, 'CONFIG_X="a\\"b"'),
])
def test_values_in_config_syntax(value: object, existing: str | None, line: str) -> None:
    assert kconfig.normalize("CONFIG_X", value, existing, "p.toml [config]").line() == line


@pytest.mark.parametrize(("name", "value"), [
    ("B", "y"), ("CONFIG_B-X", "y"), ("CONFIG_", "y"), ("config_b", "y"), ("CONFIG_B\n", "y"),
    ("CONFIG_B", "a\nb"), ("CONFIG_B", "a\u2028b"), ("CONFIG_B", "a\x0cb"), ("CONFIG_B", '"unterminated'),
    ("CONFIG_B", 1.5),
])
def test_malformed_names_and_values_are_refused(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match=r"p\.toml \[config\]"):
        kconfig.normalize(name, value, None, "p.toml [config]")


def test_apply_edits_in_place_appends_new_and_is_idempotent() -> None:
    text = "# i386\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\n"
    reqs = kconfig.requests({"CONFIG_B": "y", "CONFIG_NEW": "y"}, ["CONFIG_C"], kconfig.parse(text), "w")
    out = kconfig.apply(text, reqs)
    assert out == "# i386\nCONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_NEW=y\n"
    assert kconfig.apply(out, reqs) == out
    assert kconfig.mismatches(out, reqs) == []


def test_configs_of_the_target_arch_all_flavours() -> None:
    names = ["kernel-2.6.27.5-i586.config", "kernel-2.6.27.5-i686-PAE.config",
             "kernel-2.6.27.5-i686-debug.config", "kernel-2.6.27.5-i686.config",
             "kernel-2.6.27.5-x86_64.config", "kernel-x86_64-debug-rhel.config"]
    assert configs_for(names, "i686") == names[1:4]
    assert configs_for(names, "x86_64") == names[4:]


def test_git_apply_lines_count_but_not_inside_a_function_body() -> None:
    spec = """\
Name: k
%prep
ApplyOptionalPatch()
{
  git apply --index "$RPM_SOURCE_DIR/$1"
}
git apply %{PATCH1}
ApplyOptionalPatch linux-kernel-test.patch
%build
"""
    lines = spec.splitlines()
    point = find_prep_point(lines, "k.spec")
    assert lines[point.last_apply] == "ApplyOptionalPatch linux-kernel-test.patch"
    assert point.command == "ApplyOptionalPatch"
    calls = ("git apply %", "ApplyOptionalPatch l")
    only_function = "\n".join(ln for ln in lines if not ln.startswith(calls))
    with pytest.raises(InputError, match="applies no patch"):
        find_prep_point(only_function.splitlines(), "k.spec")


def test_only_the_primary_targets_configs_are_used() -> None:
    # Fedora's %prep keeps the primary target's configs and deletes the other flavour's.
    names = ["kernel-aarch64-fedora.config", "kernel-x86_64-debug-fedora.config",
             "kernel-x86_64-debug-rhel.config", "kernel-x86_64-fedora.config", "kernel-x86_64-rhel.config"]
    chosen, why = used_configs(names, "x86_64", {"primary_target": "fedora"})
    assert chosen == ["kernel-x86_64-debug-fedora.config", "kernel-x86_64-fedora.config"]
    assert "primary target fedora" in why and "kernel-x86_64-rhel.config" in why
    chosen, _ = used_configs(names, "x86_64", {"primary_target": "rhel"})
    assert chosen == ["kernel-x86_64-debug-rhel.config", "kernel-x86_64-rhel.config"]
    # No primary target (the 2010 layout): every config of the arch.
    old = ["kernel-2.6.27.5-i686-PAE.config", "kernel-2.6.27.5-i686.config"]
    assert used_configs(old, "i686", {})[0] == old


@pytest.mark.parametrize(("release", "macros", "marked"), [
    ("200.fc37", {"dist": ".fc37"}, "200.respin.fc37"),
    ("200.fc37", {}, "200.respin.fc37"),  # the host's rpm has no %dist: read from the release
    ("200.local.fc37", {"dist": ".fc37", "buildid": ".local"}, "200.respin.fc37"),
    ("200.respin.fc37", {"dist": ".fc37"}, "200.respin.fc37"),
    ("117", {}, "117.respin"),
    ("503.el9_2", {}, "503.respin.el9_2"),
])
def test_the_changelog_names_the_release_the_package_will_have(release: str, macros: dict[str, str],
                                                                marked: str) -> None:
    assert marked_release(release, ".respin", macros) == marked


def test_buildid_goes_under_fedoras_own_commented_line() -> None:
    spec = SPEC.replace("# % define buildid .local", "# define buildid .local")
    text, _ = inject_text(spec, _inj(), "kernel.spec")
    lines = text.splitlines()
    assert lines[lines.index("# define buildid .local") + 1] == "%define buildid .respin"
    assert lines[0] != "%define buildid .respin"


def test_the_reason_names_the_new_symbols_fedoras_check_lists() -> None:
    from respin.stages.kernel.lib.rpmpkg import rpmbuild_reason

    log = ("+ ./process_configs.sh -w -n -c 6.1.192\nProcessing kernel-6.1.192-x86_64.config ...\n"
           "Found unset config items in x86_64 , please set them to an appropriate value\n"
           "CONFIG_PACKET_DIAG=n\nCONFIG_AMT=n\nerror: Bad exit status from /var/tmp/rpm-tmp.x (%prep)\n")
    assert rpmbuild_reason(log) == ("Found unset config items in x86_64 , please set them to an appropriate "
                                    "value: CONFIG_PACKET_DIAG, CONFIG_AMT")


def test_a_hand_off_survives_the_state_file_and_a_short_one_is_refused(tmp_path: Path) -> None:
    import json

    from respin.pipeline.errors import UsageError
    from respin.pipeline.stage import Artifact
    from respin.stages.kernel.kinds import SNAPSHOT, Snapshot

    record = Snapshot(prepared="/t", configs=["kernel-x86_64.config"], layout="configs-as-sources",
                      kernel_local=True, kconfig_files=3, macros={"dist": ".fc37"},
                      release_takes_localversion=False)
    art = record.artifact(tmp_path / "snap")
    assert art.kind == SNAPSHOT
    # Through JSON, as the runner keeps it between runs.
    again = Artifact.from_json(json.loads(json.dumps(art.to_json())))
    assert Snapshot.of(again) == record
    short = Artifact(tmp_path / "snap", SNAPSHOT, meta={"prepared": "/t"})
    lacks = ("'kconfig-snapshot' record lacks configs, layout, kernel_local, kconfig_files, macros, "
             "release_takes_localversion; rerun with --force")
    with pytest.raises(UsageError, match=re.escape(lacks) + "$"):
        Snapshot.of(short)


def test_a_run_with_no_time_to_date_it_by_is_refused_in_one_line(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # No [pipeline] time, none in the environment, and fetch published none (an SRPM with
    # neither a changelog nor a build time): no silent 1970.
    import logging

    from respin.pipeline.stage import Artifact, Context
    from respin.stages.kernel.kinds import SOURCE_SRPM
    from respin.stages.kernel.lib.topdir import source_date

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    srpm = tmp_path / "kernel-1-1.src.rpm"

    def ctx(settings: dict[str, object], dates: dict[str, int]) -> Context:
        return Context(workdir=tmp_path, source=tmp_path / "k.toml", settings=settings, stagedir=tmp_path,
                       log=logging.getLogger("t"), produced={"fetch": [Artifact(srpm, SOURCE_SRPM)]},
                       dates=dates)

    with pytest.raises(InputError) as info:
        source_date(ctx({}, {}))
    assert info.value.message == (f"{srpm}: has neither a changelog nor a build time to date the rebuild "
                                  "by: set source_date_epoch in [pipeline] or SOURCE_DATE_EPOCH")
    assert source_date(ctx({}, {"fetch": 1700000000})) == 1700000000  # what fetch published
    assert source_date(ctx({"source_date_epoch": 5}, {"fetch": 1700000000})) == 5  # the user's wins


@pytest.mark.parametrize("packager", [
    "respin <r@l> - 1\n- x\n\n%post\necho INJECTED\nexit 0\n#",  # a %post scriptlet of its own
    "respin <r@l>\u2028%post",  # a line break to Python (and specfile), not to rpm
    "respin", "<r@l>", "respin <r@l> extra", "respin <r l>",
])
def test_a_packager_that_is_not_one_name_email_line_is_refused(packager: str, tmp_path: Path) -> None:
    from respin_cli import assert_one_line_error, respin

    pf = tmp_path / "kernel.toml"
    pf.write_text(f'[pipeline]\nworkdir = "work"\n[fetch]\nsrpm = "k.src.rpm"\n'
                  f'[config]\nset = {{ CONFIG_X = "y" }}\n[inject]\npackager = {json.dumps(packager)}\n')
    assert_one_line_error(respin("run", pf, check=False), 3, "[inject]", "packager",
                          "is not one 'Name <email>' line")


def test_the_changelog_entry_is_literal_for_rpm_and_stays_one_line() -> None:
    inj = dataclasses.replace(_inj(), changelog='Add it (CONFIG_X="%(id)")', packager="Eve %x <e@x>",
                              evr="2.6.27.5-117%{x}")
    lines = inject_text(SPEC, inj, "kernel.spec")[0].splitlines()
    cl = lines.index("%changelog")
    assert lines[cl + 1:cl + 3] == ["* Sat Nov 08 2008 Eve %%x <e@x> - 2.6.27.5-117%%{x}",
                                    '- Add it (CONFIG_X="%%(id)")']
    with pytest.raises(InputError, match="line break"):
        inject_text(SPEC, dataclasses.replace(_inj(), changelog="a\u2028%post"), "kernel.spec")


def test_a_name_with_a_final_newline_is_not_a_name() -> None:
    # `^...$` matches before a final newline: every name and value is matched whole.
    with pytest.raises(ConfigError, match="is not a kernel config symbol"):
        kconfig.requests({}, ["CONFIG_B\n"], {}, "p.toml [config]")
    assert kconfig.normalize("CONFIG_B", "12\t", None, "w").line() == 'CONFIG_B="12\t"'
    assert kconfig.parse("CONFIG_A=y\n# CONFIG_B is not set\n") == {"CONFIG_A": "y", "CONFIG_B": None}


@pytest.mark.parametrize(("table", "needle"), [
    ('[rebuild]\nwith = ["baseonly\\n"]\n', "--with/--without switch name"),
    ('[rebuild]\ndefine = { "dist\\n" = ".x" }\n', "is not a macro name"),
    ('[distgit]\nauthor = "a <b>\\n"\n', "is not one 'Name <email>' line"),
    ('[fetch]\nsrpm = "k.src.rpm"\nsha256 = "' + "0" * 64 + '\\n"\n', "not 64 hex digits"),
])
def test_a_final_newline_is_refused_in_every_checked_name(table: str, needle: str, tmp_path: Path) -> None:
    from respin_cli import assert_one_line_error, respin

    fetch = "" if table.startswith("[fetch]") else '[fetch]\nsrpm = "k.src.rpm"\n'
    pf = tmp_path / "kernel.toml"
    pf.write_text(f'[pipeline]\nworkdir = "work"\n{fetch}[config]\nset = {{ CONFIG_X = "y" }}\n{table}')
    assert_one_line_error(respin("run", pf, check=False), 3, needle)


NEEDY_SPEC = """\
%prep
respin-prep-only
%build
Helper() {
  respin-in-a-function
}
Helper
case "$Variant" in
  debug | respin-label) respin-after-a-label ;;
esac
grep -E 'respin-quoted|also' x && respin-after-and
%if %{with_tools}
respin-in-an-if
%endif
%ifarch aarch64
respin-other-arch
%else
respin-this-arch
%endif
%ifarch %{power64}
respin-arch-macro
%endif
cat > f <<'END'
respin-in-a-heredoc
END
%install
(cd x && respin-in-a-subshell) | respin-in-a-pipe
%files
respin-not-a-script
"""


def test_host_needs_reads_only_what_runs_whatever_the_switches() -> None:
    found = hostneeds.problems(NEEDY_SPEC, "k.spec", target_cpu="x86_64", buildshell="/bin/bash",
                               path="/nonexistent")
    named = [ln.split(" runs ")[1].split(",")[0] for ln in found]
    assert [n for n in named if not n.startswith("respin-")] == ["grep", "cat"]  # on no PATH either
    named = [n for n in named if n.startswith("respin-")]
    assert named == ["respin-in-a-function", "respin-after-and", "respin-this-arch",
                     "respin-in-a-subshell", "respin-in-a-pipe"], found
    assert found[0].startswith("k.spec line 5: %build runs respin-in-a-function, which is not on the build")


def test_host_needs_names_a_bashism_once_under_a_shell_that_is_not_bash(tmp_path: Path) -> None:
    spec = "%build\nif [[ -n x ]]; then :; fi\npushd x\n%if 0\npopd\n%endif\n"
    dash = tmp_path / "sh"
    dash.symlink_to("/bin/dash")
    (line,) = hostneeds.problems(spec, "k.spec", target_cpu=None, buildshell=str(dash), path="/bin")
    assert line.startswith(f"k.spec line 2: %build uses [[, which rpm's build shell here, {dash}")
    assert hostneeds.problems(spec, "k.spec", target_cpu=None, buildshell="/bin/bash", path="/bin") == []
    assert hostneeds.spec_buildshell("%global _buildshell /bin/bash\n") == "/bin/bash"


def test_inject_keeps_every_line_of_the_spec_blank_lines_too() -> None:
    # Each edit only adds lines: the blank line before %description stays.
    import difflib

    text, _ = inject_text(SPEC, _inj(), "kernel.spec")
    before, after = SPEC.splitlines(), text.splitlines()
    ops = {op for op, *_ in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes()}
    assert ops == {"equal", "insert"}, ops
    at = after.index("Patch11: linux-2.6-config-respin.patch")
    assert after[at + 1:at + 3] == ["", "%description"]


@pytest.mark.parametrize(("value", "existing"), [("abc", "17"), (True, "17"), ("abc", "y"), (1000, "m")])
def test_a_value_the_symbols_type_cannot_hold_is_refused(value: object, existing: str) -> None:
    with pytest.raises(ConfigError, match="is not a valid value for CONFIG_X, which takes"):
        kconfig.normalize("CONFIG_X", value, existing, "p.toml [config]")


@pytest.mark.root
def test_the_spec_s_shell_macros_run_as_the_builder_when_inject_parses_it(tmp_path: Path) -> None:
    # rpm's parser runs %(...) while specfile reads the spec: package code, never as root.
    import os

    from respin.stages.kernel.lib import rpmpkg

    if os.geteuid() != 0:
        pytest.skip("needs root: the builder identity is what root drops to")
    witness = Path("/tmp") / f"respin-witness-{os.getpid()}"
    witness.unlink(missing_ok=True)
    spec = SPEC.replace("%define with_utrace 1\n", f"%define with_utrace %(id -u > {witness}; echo 1)\n")
    try:
        text, _ = inject_text(spec, _inj(), "kernel.spec")
        assert "Patch11: linux-2.6-config-respin.patch" in text.splitlines()
        assert witness.read_text().strip() == str(rpmpkg.BUILDER_ID)
        assert witness.stat().st_uid == rpmpkg.BUILDER_ID
        # A spec rpm cannot parse is still one line naming it, from the builder's child.
        with pytest.raises(InputError, match=r"kernel\.spec: rpm cannot parse the spec"):
            inject_text(spec.replace("%description", "%description -n"), _inj(), "kernel.spec")
    finally:
        witness.unlink(missing_ok=True)


def test_the_spec_s_config_check_compiler_is_read_from_its_script(tmp_path: Path) -> None:
    # Fedora's process_configs.sh runs make with CROSS_COMPILE=scripts/dummy-tools/; the
    # fixtures' scripts run the host's compiler: config predicts with what the script uses.
    import logging

    from respin.pipeline.stage import Artifact, Context
    from respin.stages.kernel.kinds import SOURCES
    from respin.stages.kernel.lib.validate import spec_cross_compile

    sources = tmp_path / "sources"
    sources.mkdir()
    ctx = Context(workdir=tmp_path, source=tmp_path / "kernel.toml", settings={}, stagedir=tmp_path,
                  log=logging.getLogger("test"), produced={"fetch": [Artifact(sources, SOURCES)]})
    assert spec_cross_compile(ctx) == ""
    (sources / "process_configs.sh").write_text('make ARCH="$arch" olddefconfig\n')
    assert spec_cross_compile(ctx) == ""
    (sources / "process_configs.sh").write_text('CROSS="scripts/dummy-tools/"\nmake CROSS_COMPILE=$CROSS\n')
    assert spec_cross_compile(ctx) == "scripts/dummy-tools/"


def test_the_build_s_tree_is_read_without_links_or_fifos(tmp_path: Path) -> None:
    # prep reads the tree the build left as data: a fifo there would block an open as root
    # forever, and a link could name a host file; neither is read.
    import os

    from respin.stages.kernel.prep import _hook_files, release_takes_localversion

    tree = tmp_path / "tree"
    (tree / "scripts").mkdir(parents=True)
    os.mkfifo(tree / "Makefile")
    outside = tmp_path / "host-file"
    outside.write_text("CONFIG_LOCALVERSION\n")
    (tree / "scripts/setlocalversion").symlink_to(outside)
    assert release_takes_localversion(tree) is False
    (tree / "scripts/setlocalversion").unlink()
    (tree / "scripts/setlocalversion").write_text("echo $CONFIG_LOCALVERSION\n")
    assert release_takes_localversion(tree) is True
    hook = tmp_path / "hook"
    hook.mkdir()
    os.mkfifo(hook / "kernel-x86_64.config")
    (hook / "kernel-i686.config").symlink_to(outside)
    (hook / ".respin-hook-reached").write_text("")
    assert _hook_files(hook) == {".respin-hook-reached": b""}


# --- a source package's files are regular files ------------------------------------------

def _unpacked(tmp_path: Path) -> tuple[Path, Path]:
    """An unpacked SRPM's SPECS/ and SOURCES/, and a file of root's it must never reach."""
    tree = tmp_path / "pristine"
    (tree / "SPECS").mkdir(parents=True)
    (tree / "SOURCES").mkdir()
    (tree / "SPECS/kernel.spec").write_text("Name: kernel\n")
    (tree / "SOURCES/linux-6.1.tar.xz").write_bytes(b"tarball")
    secret = tmp_path / "secret"
    secret.write_text("root's own\n")
    secret.chmod(0o600)
    return tree, secret


@pytest.mark.parametrize("kind", ["symlink", "directory", "fifo"])
def test_fetch_refuses_a_payload_that_is_not_regular_files(tmp_path: Path, kind: str) -> None:
    import os

    from respin.stages.kernel.fetch import only_regular_files

    tree, secret = _unpacked(tmp_path)
    only_regular_files(tree, tmp_path / "k.src.rpm")
    planted = tree / "SOURCES/kernel-local"
    plant: dict[str, Callable[[], None]] = {"symlink": lambda: planted.symlink_to(secret),
                                            "directory": planted.mkdir, "fifo": lambda: os.mkfifo(planted)}
    plant[kind]()
    with pytest.raises(InputError, match=r"k\.src\.rpm: its payload holds SOURCES/'kernel-local', "
                                         r"(a symlink|a directory|not a regular file): a source "
                                         r"package's files must be regular files$"):
        only_regular_files(tree, tmp_path / "k.src.rpm")


def test_a_stage_tree_is_laid_out_from_regular_files_only(tmp_path: Path) -> None:
    from respin.stages.kernel.lib import topdir

    tree, secret = _unpacked(tmp_path)
    spec = topdir.lay_out(tmp_path / "rpmbuild", tree / "SPECS/kernel.spec", tree / "SOURCES")
    assert spec.read_text() == "Name: kernel\n"
    linked = tmp_path / "rpmbuild/SOURCES/linux-6.1.tar.xz"
    assert linked.stat().st_ino == (tree / "SOURCES/linux-6.1.tar.xz").stat().st_ino
    (tree / "SOURCES/kernel-local").symlink_to(secret)
    with pytest.raises(InputError, match="kernel-local: is a symlink; a build is given only regular files"):
        topdir.lay_out(tmp_path / "other", tree / "SPECS/kernel.spec", tree / "SOURCES")
    # Neither linked nor copied: the file it points to is as it was, in no tree.
    assert secret.stat().st_nlink == 1 and secret.stat().st_mode & 0o777 == 0o600
    assert not [p for p in (tmp_path / "other").rglob("*") if p.is_file()]
