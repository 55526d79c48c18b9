"""The engine on the example plugin's stages: fingerprints, selection, errors, manifest."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

import pytest
from respin_cli import REPO, assert_one_line_error, respin

from respin.pipeline import registry, startup
from respin.pipeline.epoch import source_date_epoch
from respin.pipeline.errors import ConfigError, LockedError, UsageError
from respin.pipeline.pipelinefile import load
from respin.pipeline.runner import Runner
from respin.pipeline.stage import Artifact, Context, NoOptions, Stage


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def pfile(tmp_path: Path) -> Path:
    write(tmp_path / "in.txt", "from a file\n")
    return write(tmp_path / "p.toml", '[example-write]\nsource = "in.txt"\n')


def test_plugin_stage_is_listed_with_its_distribution() -> None:
    out = respin("stages").stdout
    assert "example-write" in out and "[respin-example-plugin]" in out
    assert "fetch" in out and "verify" in out
    # Built-ins name theirs too.
    fetch = next(line for line in out.splitlines() if line.split()[0] == "fetch")
    assert fetch.endswith(" [respin]"), fetch


@pytest.mark.parametrize("group", [registry.COMMANDS_GROUP, registry.STAGES_GROUP])
def test_own_entry_points_read_directly_match_importlib_metadata(group: str) -> None:
    own = {ep.name: ep.value for ep in entry_points(group=group)
           if ep.dist is not None and ep.dist.name == "respin"}
    assert own and startup.own_entry_points(group) == own


@pytest.mark.slow
def test_plugin_command_runs_but_cannot_take_a_builtin_name() -> None:
    assert respin("example-hello").stdout == "hello from the example plugin\n"
    top = respin("--help").stdout
    assert "example-hello" in top and "repro" in top and "net" in top
    # The squatter plugin registers `initrd`: respin's own stays.
    assert "NOT respin" not in top
    assert "NOT respin" not in respin("initrd", "--help").stdout
    assert "--parts" in respin("initrd", "list", "--help").stdout


def test_short_commands_import_only_what_they_need(tmp_path: Path) -> None:
    # Start-up is most of a short command's run (`respin initrd list` of a small
    # image): it must not read every installed distribution's metadata, nor load
    # the engine, the kernel stages, dataclasses, logging or pathlib.
    image = tmp_path / "tiny.img"
    image.write_bytes(b"070701" + b"%08X" % 1 + b"%08X" % 0o100644 + b"00000000" * 9 + b"%08X" % 2
                      + b"00000000" + b"a\0" + b"070701" + b"00000000" * 11 + b"%08X" % 11
                      + b"00000000" + b"TRAILER!!!\0" + b"\0" * 3)
    # What the interpreter loaded before respin (an editable install's finder imports
    # pathlib from its .pth) is not the command's doing.
    code = ("import sys\n"
            "before = set(sys.modules)\n"
            "from respin.pipeline.cli import main\n"
            "rc = main(['initrd', 'list', sys.argv[1]])\n"
            "from respin.pipeline.startup import DEFERRED\n"
            "heavy = DEFERRED | {'respin.stages.kernel', 'respin.stages.network'}\n"
            "sys.stderr.write(' '.join(sorted(heavy & (set(sys.modules) - before))))\n"
            "sys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(image)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "a\n"
    assert proc.stderr == ""


def test_default_template_is_chosen_from_the_sections(pfile: Path) -> None:
    pf = load(pfile)
    assert [s.name for s in pf.stages] == ["example-write", "example-upper"]


def test_run_then_nothing_to_do(pfile: Path) -> None:
    first = Runner(load(pfile)).run()
    assert first.ran == ["example-write", "example-upper"]
    upper = pfile.parent / "_respin/p/stages/example-upper/upper.txt"
    assert upper.read_text() == "FROM A FILE\n"
    second = Runner(load(pfile)).run()
    assert second.ran == []


def test_input_change_reruns_from_that_stage(pfile: Path) -> None:
    Runner(load(pfile)).run()
    write(pfile.parent / "in.txt", "changed\n")
    plans = Runner(load(pfile)).plan()
    assert plans[0].reason == "inputs changed"
    assert Runner(load(pfile)).run().ran == ["example-write", "example-upper"]


def test_same_output_does_not_rerun_later_stages(pfile: Path) -> None:
    Runner(load(pfile)).run()
    # Forcing the first stage rewrites identical bytes: the next stage stays up to date.
    result = Runner(load(pfile)).run(only=["example-write"], force=True)
    assert result.ran == ["example-write"]
    assert Runner(load(pfile)).run().ran == []


def test_a_change_that_leaves_the_output_identical_stops_there(tmp_path: Path) -> None:
    pfile = write(tmp_path / "p.toml", "[example-write]\ntext = \"hello\"\n")
    assert Runner(load(pfile)).run().ran == ["example-write", "example-upper"]
    # Another way to the same bytes: the first stage reruns, the second sees the same input.
    write(tmp_path / "hello.txt", "hello")
    write(pfile, "[example-write]\nsource = \"hello.txt\"\n")
    plans = Runner(load(pfile)).plan()
    assert [p.reason for p in plans] == ["options changed", "reruns if 'example-write' changes its output"]
    assert Runner(load(pfile)).run().ran == ["example-write"]
    assert Runner(load(pfile)).run().ran == []
    # A change that reaches the output reruns the next stage, and says why.
    write(tmp_path / "hello.txt", "hello, world")
    Runner(load(pfile)).run(only=["example-write"])
    assert Runner(load(pfile)).plan()[1].reason == "an earlier stage's output changed"
    assert Runner(load(pfile)).run().ran == ["example-upper"]
    upper = tmp_path / "_respin/p/stages/example-upper/upper.txt"
    assert upper.read_text() == "HELLO, WORLD"


class _Recorder(Stage[NoOptions]):
    """Records a tool and publishes a time; tries to change what earlier stages made."""

    name = "example-upper"
    seen: ClassVar[dict[str, Any]] = {}

    def run(self, ctx: Context) -> list[Artifact]:
        ctx.record_tool("recorder", "1")
        ctx.publish_source_date(1234)
        with pytest.raises(TypeError):
            ctx.produced["example-write"] = []  # type: ignore[index]
        self.seen.update(earlier=ctx.artifact("text").path.name, dates=dict(ctx.dates),
                         epoch=ctx.source_date_epoch)
        out = ctx.stagedir / "r.txt"
        out.write_text("r")
        return [Artifact(out, "text")]


def test_a_context_shows_earlier_outputs_read_only_and_keeps_its_own_records(
        pfile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    loaded = load(pfile)
    result = Runner(dataclasses.replace(loaded, stages=(loaded.stages[0], _Recorder(NoOptions())))).run()
    assert _Recorder.seen == {"earlier": "out.txt", "dates": {}, "epoch": 1234}
    state = json.loads((pfile.parent / "_respin/p/state/example-upper.json").read_text())
    assert state["tools"] == {"recorder": "1"} and state["source_date"] == 1234
    write_state = json.loads((pfile.parent / "_respin/p/state/example-write.json").read_text())
    assert write_state["tools"] == {}
    assert result.manifest["tools"]["recorder"] == "1"
    assert result.manifest["source_dates"] == {"example-upper": 1234}


def test_tampered_output_is_noticed(pfile: Path) -> None:
    Runner(load(pfile)).run()
    out = pfile.parent / "_respin/p/stages/example-upper/upper.txt"
    out.write_text("tampered")
    plans = Runner(load(pfile)).plan()
    assert plans[1].reason.startswith("output changed")
    Runner(load(pfile)).run()
    assert out.read_text() == "FROM A FILE\n"


def test_selection_until_and_from(pfile: Path) -> None:
    assert Runner(load(pfile)).run(until="example-write").ran == ["example-write"]
    assert Runner(load(pfile)).run(from_="example-upper").ran == ["example-upper"]


def test_from_refuses_when_an_earlier_stage_is_stale(pfile: Path) -> None:
    with pytest.raises(UsageError, match=r"example-write.*not up to date"):
        Runner(load(pfile)).run(from_="example-upper")


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    p = write(tmp_path / "p.toml", '[example-write]\ntxet = "x"\n')
    known = r"\(known keys: text, source, fail\)"
    with pytest.raises(ConfigError, match=rf"p\.toml \[example-write\]: txet: unknown key {known}"):
        load(p)


def test_wrong_type_is_refused(tmp_path: Path) -> None:
    p = write(tmp_path / "p.toml", "[example-write]\ntext = 3\n")
    with pytest.raises(ConfigError, match="expected a string"):
        load(p)


def test_unknown_stage_in_stage_list(tmp_path: Path) -> None:
    p = write(tmp_path / "p.toml", '[pipeline]\nstages = ["example-write", "nosuch"]\n')
    with pytest.raises(ConfigError, match="unknown stage 'nosuch'"):
        load(p)


def test_lock_refuses_a_second_run(pfile: Path) -> None:
    runner = Runner(load(pfile))
    with runner._locked(), pytest.raises(LockedError):
        Runner(load(pfile)).run()


@pytest.mark.slow
def test_cli_errors_are_one_line(tmp_path: Path, pfile: Path) -> None:
    assert_one_line_error(respin("run", pfile, "--only", "nosuch", check=False), 2, "--only nosuch")
    bad = write(tmp_path / "bad.toml", '[example-write]\ntxet = "x"\n')
    assert_one_line_error(respin("run", bad, check=False), 3, "txet: unknown key", "bad.toml")
    assert_one_line_error(respin("run", tmp_path / "missing.toml", check=False), 4, "missing.toml")
    broken = write(tmp_path / "broken.toml", "[example-write\n")
    assert_one_line_error(respin("run", broken, check=False), 3, "not valid TOML")


@pytest.mark.slow
def test_cli_json_manifest_and_status(pfile: Path) -> None:
    manifest = json.loads(respin("run", pfile, "--json").stdout)
    assert [s["status"] for s in manifest["stages"]] == ["ran", "ran"]
    kinds = {a["kind"] for a in manifest["artifacts"]}
    assert kinds == {"text"}
    assert all(len(a["sha256"]) == 64 for a in manifest["artifacts"])
    assert "python" in manifest["tools"]
    status = respin("status", pfile).stdout
    assert "up to date" in status
    again = respin("run", pfile)
    assert "nothing to do" in again.stderr


def test_failing_stage_leaves_no_state_and_rerun_works(tmp_path: Path) -> None:
    p = write(tmp_path / "p.toml", "[example-write]\nfail = true\n")
    proc = respin("run", p, check=False)
    assert proc.returncode == 1 and "internal error" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "_respin/p/state/example-write.json").exists()
    write(p, "[example-write]\nfail = false\n")
    respin("run", p)


def test_source_date_epoch_comes_from_settings_then_the_environment(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from respin.pipeline.stage import Context

    def ctx(settings: dict[str, object]) -> Context:
        return Context(workdir=tmp_path, source=tmp_path / "p.toml", settings=settings,
                       stagedir=tmp_path, log=logging.getLogger("t"))

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert ctx({"source_date_epoch": 5}).source_date_epoch == 5
    assert ctx({}).source_date_epoch == 1700000000
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert ctx({}).source_date_epoch is None
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH='yesterday'"):
        _ = ctx({}).source_date_epoch


class _Dated(Stage[Any]):
    """Publishes the time its option names, as a stage that reads it from its input would."""

    name = "dated"

    @dataclass(frozen=True)
    class Options:
        when: int = 0

    def run(self, ctx: Context) -> list[Artifact]:
        if self.options.when:
            ctx.publish_source_date(self.options.when)
        out = ctx.stagedir / "dated.txt"
        out.write_text(str(self.options.when))
        return [Artifact(out, "dated")]


class _Stamp(Stage[Any]):
    """Writes the time it is given."""

    name = "stamp"

    @dataclass(frozen=True)
    class Options:
        pass

    def run(self, ctx: Context) -> list[Artifact]:
        out = ctx.stagedir / "stamp.txt"
        out.write_text(str(ctx.source_date_epoch))
        return [Artifact(out, "stamp")]


def test_a_stage_publishes_the_runs_default_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from respin.pipeline.pipelinefile import PipelineFile, Settings

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)

    def run(when: int, setting: int | None = None, **select: object) -> str:
        settings = Settings(workdir=str(tmp_path / "w"), source_date_epoch=setting)
        stages = (_Dated(_Dated.Options(when)), _Stamp(_Stamp.Options()))
        pf = PipelineFile(tmp_path / "p.toml", settings, stages)
        Runner(pf).run(**select)  # type: ignore[arg-type]
        return (tmp_path / "w/stages/stamp/stamp.txt").read_text()

    assert run(1700000000) == "1700000000"
    # Kept with the publishing stage's state: a later stage run alone still gets it.
    assert run(1700000000, only=["stamp"], force=True) == "1700000000"
    assert run(0) == "None"  # a rerun that publishes nothing leaves no stale time behind
    assert run(1700000000, setting=5) == "5"  # the user's setting wins
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "7")
    assert run(1700000000, force=True) == "7"  # and so does the environment


@pytest.mark.parametrize("raw", ["abc", "-5", "1.5", "  ", "1e9", "\u0661\u0662"])
def test_source_date_epoch_refuses_what_is_not_whole_seconds(raw: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", raw)
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
        source_date_epoch()


def test_source_date_epoch_value_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert source_date_epoch() is None
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert source_date_epoch() == 1700000000
    assert source_date_epoch(5) == 5 and source_date_epoch("7") == 7


@pytest.mark.slow
def test_readme_python_example_runs(pfile: Path, tmp_path: Path) -> None:
    # The "From Python" example in the README, run as written on the example plugin's pipeline.
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## From Python"):]
    code = section[section.index("```python\n") + 10:section.index("\n```\n")]
    script = tmp_path / "rebuild.py"
    script.write_text(code)
    first = subprocess.run([sys.executable, str(script), str(pfile)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("ran: example-write example-upper\n")
    assert "example-upper text " in first.stdout and "upper.txt" in first.stdout
    again = subprocess.run([sys.executable, str(script), str(pfile)], capture_output=True, text=True)
    assert again.stdout.startswith("ran: nothing, all up to date\n")
    bad = tmp_path / "bad.toml"
    bad.write_text('[example-write]\ntxet = "x"\n')
    failed = subprocess.run([sys.executable, str(script), str(bad)], capture_output=True, text=True)
    assert failed.returncode == 1 and "txet: unknown key" in failed.stderr
    assert "(exit status 3)" in failed.stderr and "Traceback" not in failed.stderr


@pytest.mark.parametrize("junk", ["[]", '{"x": 1}', "not json"])
def test_a_damaged_input_hash_cache_is_no_cache(pfile: Path, junk: str) -> None:
    from respin.pipeline.runner import STATE_DIR

    Runner(load(pfile)).run()
    (pfile.parent / "_respin/p" / STATE_DIR / "inputs.json").write_text(junk)
    assert Runner(load(pfile)).run().ran == []  # hashed again: still up to date
    write(pfile.parent / "in.txt", "changed\n")
    assert Runner(load(pfile)).run().ran == ["example-write", "example-upper"]


class _Unnamed(Stage["_Unnamed.Options"]):
    name = "other-name"

    @dataclass(frozen=True)
    class Options:
        pass

    def run(self, ctx: Context) -> list[Artifact]:
        return []


class _Mutable(Stage["_Mutable.Options"]):
    name = "example-bad"

    @dataclass
    class Options:
        pass

    def run(self, ctx: Context) -> list[Artifact]:
        return []


class _NoRun(Stage["_NoRun.Options"]):
    name = "example-bad"

    @dataclass(frozen=True)
    class Options:
        pass


@pytest.mark.parametrize("obj, says", [
    (len, "entry point is not a respin.Stage subclass"),
    (_Unnamed, "class name attribute is 'other-name', entry point says 'example-bad'"),
    (_Mutable, "Options must be a frozen dataclass"),
    (_NoRun, "does not implement run()"),
], ids=["not-a-stage", "wrong-name", "mutable-options", "no-run"])
def test_a_plugin_stage_that_does_not_fit_is_refused_naming_the_plugin(obj: object, says: str) -> None:
    with pytest.raises(UsageError) as info:
        registry._check_stage("example-bad", obj, "respin-bad-plugin")
    assert info.value.message.startswith("stage 'example-bad' from respin-bad-plugin: ")
    assert says in info.value.message and "\n" not in info.value.message


def test_a_plugin_stage_that_fails_to_import_is_one_line_naming_it() -> None:
    from importlib.metadata import EntryPoint

    ep = EntryPoint(name="example-bad", value="respin_no_such_module:Stage", group=registry.STAGES_GROUP)
    with pytest.raises(UsageError, match=r"^stage 'example-bad' from \? failed to load: No module named "
                                         r"'respin_no_such_module'$"):
        registry._load_stage("example-bad", [ep])


class _Failing(Stage[Any]):
    """Writes a temp file in its own dir and in each workspace, then fails."""

    name = "failing"

    @dataclass(frozen=True)
    class Options:
        outside: str = ""

    def workspaces(self, ctx: Context) -> list[Path]:
        return [ctx.workdir / "shared", Path(self.options.outside)]

    def run(self, ctx: Context) -> list[Artifact]:
        for where in (ctx.stagedir, *self.workspaces(ctx)):
            where.mkdir(parents=True, exist_ok=True)
            (where / ".half.abcd.tmp").write_text("half")
        raise ConfigError("failing: as it was told to")


def test_a_failed_stage_leaves_no_temp_in_the_work_dir_and_none_of_the_users_is_removed(
        tmp_path: Path) -> None:
    from respin.pipeline.pipelinefile import PipelineFile, Settings

    outside = tmp_path / "users-cache"
    outside.mkdir()
    theirs = outside / ".theirs.abcd.tmp"  # named like respin's temps, but not respin's
    theirs.write_text("mine")
    pf = PipelineFile(tmp_path / "p.toml", Settings(workdir=str(tmp_path / "w")),
                      (_Stamp(_Stamp.Options()), _Failing(_Failing.Options(str(outside)))))
    with pytest.raises(ConfigError):
        Runner(pf).run()
    work = tmp_path / "w"
    assert not list(work.rglob(".half.*.tmp"))
    assert theirs.read_text() == "mine" and (outside / ".half.abcd.tmp").exists()
    # A run killed before it could sweep: the next run's start sweeps every stage dir, even
    # one that runs another stage.
    (work / "stages/failing/.left.abcd.tmp").write_text("left")
    Runner(pf).run(only=["stamp"], force=True)
    assert not (work / "stages/failing/.left.abcd.tmp").exists()
