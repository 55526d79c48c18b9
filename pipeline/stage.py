"""The stage contract: a plain class with a name, frozen options, inputs and `run`."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

from respin.pipeline.errors import RespinError, UsageError
from respin.pipeline.options import parse_options

if TYPE_CHECKING:
    from respin.pipeline.process import Runs

OptionsT = TypeVar("OptionsT")


@dataclass(frozen=True)
class Artifact:
    """A file or directory a stage produced, as later stages and the manifest see it.

    `kind` says what it is, in the words of the stage's domain (each domain lists its
    kinds); `sha256` is filled in by the runner.
    """

    path: Path
    kind: str
    sha256: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "kind": self.kind, "sha256": self.sha256,
                **({"meta": dict(self.meta)} if self.meta else {})}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Artifact:
        return cls(Path(data["path"]), data["kind"], data.get("sha256"), data.get("meta", {}))


@dataclass
class Context:
    """What the runner hands a stage.

    Relative paths in options resolve against the pipeline file's folder
    (`resolve`). Each stage owns `stagedir` (workdir/stages/<name>) for its
    outputs; anything else a domain keeps in the work dir, the domain names.
    What earlier stages made (`produced`) and the times they published
    (`dates`) are for reading; what the stage records (`tools`, `published`)
    is its own, and the runner keeps it with the stage's state.
    """

    workdir: Path
    source: Path
    settings: Mapping[str, Any]
    stagedir: Path
    log: logging.Logger
    # Each earlier stage's outputs, by stage, in pipeline order.
    produced: Mapping[str, Sequence[Artifact]] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)  # this stage's: see record_tool
    # Times earlier stages published as the run's default (stage -> epoch): see publish_source_date.
    dates: Mapping[str, int] = field(default_factory=dict)
    published: int | None = None  # the time this stage published, if it did
    run: Runs = field(default=None)  # type: ignore[assignment]
    stage: str = ""  # the name of the stage this context is for, for its error messages

    def __post_init__(self) -> None:
        if self.run is None:
            from respin.pipeline.process import run

            self.run = run

    @property
    def logdir(self) -> Path:
        return self.workdir / "logs"

    @property
    def target(self) -> str | None:
        value = self.settings.get("target")
        return str(value) if value is not None else None

    @property
    def source_date_epoch(self) -> int | None:
        """SOURCE_DATE_EPOCH for this stage: [pipeline], else the environment, else the time
        the latest earlier stage published from its input (publish_source_date), else None."""
        from respin.pipeline.epoch import source_date_epoch

        value = self.settings.get("source_date_epoch")
        given = source_date_epoch(value if isinstance(value, (int, str)) else None)
        if given is not None:
            return given
        if self.published is not None:
            return self.published
        return next(reversed(list(self.dates.values())), None)

    def publish_source_date(self, epoch: int) -> None:
        """Offer the run a default SOURCE_DATE_EPOCH taken from this stage's input (when the
        input says it last changed): every later stage gets it where the user set none,
        so one run's outputs carry one time. The runner keeps it with the stage's state."""
        if epoch < 0:
            raise ValueError(f"publish_source_date: {epoch} is before 1970")
        self.published = epoch

    def resolve(self, path: str | Path) -> Path:
        """A path from a pipeline file, relative to that file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else (self.source.parent / p).resolve()

    def artifacts(self, kind: str) -> list[Artifact]:
        """Artifacts of `kind` from the latest earlier stage that produced any."""
        for stage_artifacts in reversed(list(self.produced.values())):
            found = [a for a in stage_artifacts if a.kind == kind]
            if found:
                return found
        return []

    def artifact(self, kind: str) -> Artifact:
        """The single artifact of `kind` an earlier stage produced."""
        found = self.artifacts(kind)
        if len(found) != 1:
            raise UsageError(self._missing(kind, len(found)))
        return found[0]

    def _missing(self, kind: str, count: int) -> str:
        who = f"stage '{self.stage}'" if self.stage else "this stage"
        if count:
            return (f"{who} needs one '{kind}' from an earlier stage, found {count}; "
                    "check the stage order and --from/--only selection")
        before = list(self.produced)
        text = (f"{who} needs a '{kind}' from an earlier stage, and none made one "
                f"(stages before it: {', '.join(before) or 'none'})")
        from respin.pipeline import registry
        from respin.pipeline.errors import RespinError

        try:
            templates = registry.pipelines()
        except RespinError:
            templates = {}
        for name, order in sorted(templates.items()):
            if self.stage in order:
                first = [s for s in order[:order.index(self.stage)] if s not in before]
                if first:
                    return (text + f"; in the {name} pipeline {', '.join(first)} "
                            f"{'comes' if len(first) == 1 else 'come'} before {self.stage}")
        return text + "; check the stage order and --from/--only selection"

    def record_tool(self, name: str, version: str) -> None:
        """Note a tool version for the manifest."""
        self.tools[name] = version


class Handoff:
    """A record a stage publishes for later ones, carried as an artifact's meta (JSON in the
    stage's state). A domain subclasses it as a frozen dataclass with a `kind`: the
    publishing stage builds it (`Record(...).artifact(path)`), a later stage reads it
    back typed (`Record.read(ctx)`), so mypy sees a hand-off that no longer fits."""

    kind: ClassVar[str]

    def artifact(self, path: Path, kind: str | None = None) -> Artifact:
        """An artifact carrying this record: of this record's kind unless `kind` says otherwise
        (two outputs of one stage may carry one record)."""
        return Artifact(path, kind or self.kind, meta=dataclasses.asdict(self))  # type: ignore[call-overload]

    @classmethod
    def of(cls, art: Artifact) -> Self:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        # A state written by a stage version that published less: name what it lacks.
        missing = [f.name for f in fields if f.name not in art.meta
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise UsageError(f"{art.path}: its '{art.kind}' record lacks {', '.join(missing)}; "
                             "rerun with --force")
        return cls(**{f.name: art.meta[f.name] for f in fields if f.name in art.meta})

    @classmethod
    def find(cls, ctx: Context) -> Self | None:
        """What an earlier stage published of this kind, or None when no stage of the run did
        (for a hand-off a stage uses when it is there)."""
        found = ctx.artifacts(cls.kind)
        return cls.of(found[0]) if found else None

    @classmethod
    def read(cls, ctx: Context) -> tuple[Path, Self]:
        """The one artifact of this kind an earlier stage published, and what it carries."""
        art = ctx.artifact(cls.kind)
        return art.path, cls.of(art)


@dataclass(frozen=True)
class PipelineView:
    """The whole pipeline as a stage's `check` sees it, before any stage runs: every stage in
    order with its options, and which of them the run will run. For reading only."""

    stages: tuple[Stage[Any], ...]
    running: frozenset[str]  # the stages the run will run (every one, for `respin check`)

    def stage(self, name: str) -> Stage[Any] | None:
        """The pipeline's stage called `name`, or None."""
        return next((s for s in self.stages if s.name == name), None)

    def before(self, name: str) -> tuple[Stage[Any], ...]:
        """The stages that come before `name`, in order."""
        names = [s.name for s in self.stages]
        return self.stages[:names.index(name)] if name in names else ()


# What a check finds: a line naming the file and the key (a pipeline file problem, exit 3),
# or an error of its own class (its exit code, when it is the only problem found).
Problem = str | RespinError


@dataclass(frozen=True)
class NoOptions:
    """The options of a stage that takes none: its table must be empty."""


class Stage(Generic[OptionsT]):
    """Base class of every stage, built-in or plugin.

    Subclasses set `name`, `summary`, `version` (bump it when output would
    change for the same inputs) and `Options` (a frozen dataclass; its fields
    are the keys of the stage's `[name]` table), and name that class as the
    type argument, `class Fetch(Stage["Fetch.Options"])`, so `self.options` is
    typed. The runner decides whether to run; `run` just does the work and
    returns what it produced.
    """

    name: ClassVar[str]
    summary: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    # The kinds of artifact `respin run` prints as the run's result when this stage is the
    # latest to produce them (a stage knows what a user came for; the engine does not).
    results: ClassVar[tuple[str, ...]] = ()

    # The [pipeline] settings (keys of the manifest's "settings") whose value decides this
    # stage's output; None: every one. A change of another does not rerun the stage (a stage
    # that builds nothing is not rerun for another target).
    settings_read: ClassVar[tuple[str, ...] | None] = None

    Options: ClassVar[type[Any]] = NoOptions

    def __init__(self, options: OptionsT) -> None:
        self.options = options

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str) -> Stage[Any]:
        """Build the stage from its TOML table; unknown keys are an error naming `where`."""
        return cls(parse_options(cls.Options, table, where))

    def options_json(self) -> dict[str, Any]:
        """The options as plain JSON data (for the fingerprint)."""
        data: dict[str, Any] = dataclasses.asdict(self.options)  # type: ignore[call-overload]
        return data

    def inputs(self, ctx: Context) -> Sequence[Path]:
        """Files outside the work dir whose content decides the output."""
        return ()

    def workspaces(self, ctx: Context) -> Sequence[Path]:
        """Directories besides `stagedir` that the stage writes into: the runner removes
        what a failed or interrupted run left half written there, as in `stagedir`, where
        they are inside the work dir (one elsewhere holds files respin did not make)."""
        return ()

    def outputs(self, ctx: Context) -> Mapping[str, Path]:
        """Paths the stage writes that its options name (an image root, a repository), by
        option: `respin repro` points each one outside the work dir at a copy in each run's
        own directory, so neither run writes there nor reads what the other wrote."""
        return {}

    def check(self, ctx: Context, pipeline: PipelineView) -> Iterable[Problem]:
        """What the stage can tell is wrong before any stage of the run runs: its order among
        the others, their options, the tools it needs, the inputs it can read now. Each
        problem is one line naming the file and the key. `ctx.produced` holds only the
        outputs of earlier stages that are up to date. A check reads; it writes nothing,
        not even its stage dir. The runner runs the check of every stage it will run, and
        runs none when any finds a problem; `respin check` runs them all and nothing else."""
        return ()

    def run(self, ctx: Context) -> list[Artifact]:
        raise NotImplementedError
