"""The `respin` command. The only place that prints results and turns errors into exit codes."""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from respin import DESCRIPTION
from respin.pipeline import __version__, registry, startup
from respin.pipeline.errors import (
    EXIT_CODES,
    LINE_LIMIT,
    InputError,
    Interrupted,
    LockedError,
    Report,
    RespinError,
    UsageError,
    one_line,
    report,
)

if TYPE_CHECKING:
    import logging


class _Parser(argparse.ArgumentParser):
    # argparse exits with 2 and a usage dump; keep the one-line error and our exit code.
    def error(self, message: str) -> Any:
        raise UsageError(_usage_message(self.prog.partition(" ")[2], message))


def _usage_message(command: str, message: str) -> str:
    """One line: the sub-command, argparse's words, where the options are listed."""
    message = message.replace("argument COMMAND: invalid choice:", "unknown command")
    where = f"{command}: " if command else ""
    return f"{where}{message}; see respin {command + ' ' if command else ''}--help"


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The --workdir and --target a command line gives, checked as the file's keys are."""
    out: dict[str, Any] = {}
    if getattr(args, "workdir", None):
        out["workdir"] = os.path.realpath(args.workdir)
    if getattr(args, "target", None) is not None:
        from respin.pipeline.pipelinefile import check_target

        try:
            check_target(args.target)
        except ValueError as exc:
            raise UsageError(f"--target: {exc}") from exc
        out["target"] = args.target
    return out


# The engine (pipeline files, runner, progress) is imported by the commands that
# use it: deferred, pipeline/startup.py.


def lists_problems(cmd: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command that reports every problem of a pipeline file, one line each (the first and
    a count of the rest is what commands with one line to give say)."""
    @functools.wraps(cmd)
    def listing(args: argparse.Namespace) -> int:
        from respin.pipeline.options import OptionsError

        try:
            return cmd(args)
        except OptionsError as exc:
            lines = (Report(one_line(line), exc.exit_code).line() for line in exc.problems)
            sys.stderr.writelines(f"{line}\n" for line in lines)
            return exc.exit_code
    return listing


@lists_problems
def _cmd_check(args: argparse.Namespace) -> int:
    from respin.pipeline import preflight
    from respin.pipeline.pipelinefile import load
    from respin.pipeline.runner import Runner

    runner = Runner(load(args.file, overrides(args)))
    preflight.refuse(preflight.problems(runner, runner.names, force=True, inputs=True))
    print(f"{args.file}: ok: {len(runner.names)} stage(s) checked ({', '.join(runner.names)}); "
          "nothing was run")
    return 0


@lists_problems
def _cmd_run(args: argparse.Namespace) -> int:
    import json

    from respin.pipeline.pipelinefile import load
    from respin.pipeline.progress import Progress
    from respin.pipeline.runner import Runner

    runner: Runner | None = None
    try:
        runner = Runner(load(args.file, overrides(args)), progress=Progress(quiet=args.quiet))
        result = runner.run(from_=args.from_, until=args.until, only=args.only or (), force=args.force)
    except BaseException as exc:
        if args.json:
            # A CI job reads stdout: a failed run still prints one JSON document, the manifest
            # with the failed stage and the error when a stage failed. The exit code is the error's.
            doc = runner.manifest if runner is not None and runner.manifest is not None else None
            if doc is None or doc.get("error") is None:
                doc = {**(doc or {"pipeline": os.path.abspath(args.file), "stages": [], "artifacts": []}),
                       "error": report(exc).to_json(None)}
            json.dump(doc, sys.stdout, indent=1)
            sys.stdout.write("\n")
        raise
    if args.json:
        json.dump(result.manifest, sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif not args.quiet:
        for art in _results(runner.pipeline.stages, result.manifest):
            print(f"{art['kind']:12} {art['path']}")
    return 0


def _results(stages: Sequence[Any], manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """What a run shows as its result: of each kind a selected stage declares worth showing,
    what the last selected stage producing it made; when the selection stops before the
    pipeline's last stage (--until, --only), also all that its last selected stage made."""
    selected = [r["name"] for r in manifest["stages"]
                if r["status"] in ("ran", "up to date") and r["reason"] != "not selected"]
    if not selected:
        return []
    shown = {(stage.name, kind) for stage in stages if stage.name in selected for kind in stage.results}
    arts = [a for a in manifest["artifacts"] if a["stage"] in selected]
    latest = {a["kind"]: a["stage"] for a in arts}
    last = selected[-1] if selected[-1] != stages[-1].name else None
    return [a for a in arts if a["stage"] == last
            or ((a["stage"], a["kind"]) in shown and latest[a["kind"]] == a["stage"])]


def _cmd_status(args: argparse.Namespace) -> int:
    import json

    from respin.pipeline.pipelinefile import load
    from respin.pipeline.runner import Runner

    pipeline = load(args.file, overrides(args))
    runner = Runner(pipeline)
    if runner.run_in_progress():
        # Its state files are half updated: a table now would mix two runs.
        raise LockedError(f"{pipeline.workdir}: a respin run holds this work dir's lock; "
                          "status shows nothing until it ends")
    plans = runner.plan()
    rows = [{"stage": p.stage.name, "up_to_date": not p.reason, "reason": p.reason or "up to date",
             "missing": [str(m) for m in p.missing]}
            for p in plans]
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        width = max(len(p.stage.name) for p in plans)
        for r in rows:
            print(f"{r['stage']:<{width}}  {r['reason']}")
    for p in plans:
        if p.missing:
            # The table is the answer; the exit status says a run cannot succeed as things are.
            raise InputError(f"{p.missing[0]}: no such file (an input of stage '{p.stage.name}')")
    # As `make -q`: 0 when every stage is up to date, 1 when a run would run something.
    return 1 if any(p.reason for p in plans) else 0


def _cmd_stages(args: argparse.Namespace) -> int:
    known = registry.stages()
    width = max((len(n) for n in known), default=0)
    for name, info in sorted(known.items()):
        # Every stage names its distribution, built-ins too: which are respin's, which a plugin's.
        print(f"{name:<{width}}  {info.cls.summary} [{info.origin}]")
    return 0


def _cmd_exit_codes(args: argparse.Namespace) -> int:
    for code, meaning in sorted(EXIT_CODES.items()):
        print(f"{code:>3}  {meaning}")
    return 0


def _command_word(argv: Sequence[str] | None) -> str | None:
    """The sub-command named on the command line: the first word that is not an option
    (every top-level option is a flag without a value)."""
    for arg in argv or ():
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; given `argv`, only the provider of the command it names is loaded
    (when a provider registers that name; otherwise every provider is)."""
    parser = _Parser(prog="respin", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"respin {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every command run")
    parser.add_argument("-q", "--quiet", action="store_true", help="only errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def pipeline_args(p: argparse.ArgumentParser, json: bool = True) -> None:
        p.add_argument("file", help="pipeline file (TOML)")
        p.add_argument("--workdir", help="work dir, relative to the current directory (default: "
                       "[pipeline] workdir, relative to the file; else _respin/<file stem> beside it)")
        p.add_argument("--target", help="override [pipeline] target")
        if json:
            p.add_argument("--json", action="store_true", help="print JSON on stdout")

    p = sub.add_parser("run", help="run a pipeline file's stages that are not up to date")
    pipeline_args(p)
    p.add_argument("--from", dest="from_", metavar="STAGE", help="start at this stage")
    p.add_argument("--until", metavar="STAGE", help="stop after this stage")
    p.add_argument("--only", metavar="STAGE", action="append", help="run only this stage (repeatable)")
    p.add_argument("--force", action="store_true", help="run selected stages even if up to date")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("check", help="run every stage's own checks of a pipeline file, and nothing else")
    pipeline_args(p, json=False)
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("status", help="each stage: up to date, or why it would run")
    pipeline_args(p)
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("stages", help="every stage known, built-in and plugin")
    p.set_defaults(func=_cmd_stages)

    p = sub.add_parser("exit-codes", help="what each exit status means")
    p.set_defaults(func=_cmd_exit_codes)

    # Only the provider of the command word is imported (pipeline/startup.py); with no
    # command word, or an unknown one, every provider is.
    word = _command_word(argv)
    if word in _CORE:
        return parser
    if word not in startup.own_entry_points(registry.COMMANDS_GROUP):
        from respin.pipeline.commands import register as register_builtin  # repro, makefile

        register_builtin(sub)
    if word not in _ENGINE_COMMANDS:
        for register in registry.commands(only=word).values():
            register(sub)
    return parser


_CORE = frozenset({"run", "check", "status", "stages", "exit-codes"})
_ENGINE_COMMANDS = frozenset({"repro", "makefile"})


_signalled: list[int] = []


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # SIGTERM is treated like Ctrl-C so the same clean-up runs. The signal is
    # remembered: whatever error the interruption causes on its way up (a
    # half-closed descriptor, say) is reported as the interruption it is.
    _signalled.append(signum)
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Global flags work before or after the sub-command (`respin run x.toml -q`).
    flags = {"--debug", "-v", "--verbose", "-q", "--quiet"}
    given = {a for a in argv if a in flags}
    argv = sorted(given) + [a for a in argv if a not in flags]
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        return _main(argv, given)
    except BaseException:
        if _signalled:
            return _report(KeyboardInterrupt(), debug=False)
        raise


def _configure_logging(given: set[str]) -> None:
    import logging  # deferred: pipeline/startup.py

    debug = "--debug" in given
    logging.basicConfig(level=logging.DEBUG if debug or given & {"-v", "--verbose"}
                        else logging.WARNING if given & {"-q", "--quiet"} else logging.INFO,
                        format="respin: %(name)s: %(message)s" if debug else "respin: %(message)s",
                        stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_one_line_record)


def _one_line_record(record: logging.LogRecord) -> bool:
    """A log line carries values (paths, names) that may hold newlines or be huge, as an error
    line does: it too is written as one printable line."""
    record.msg, record.args = one_line(record.getMessage(), 2 * LINE_LIMIT), None
    return True


def _traceback() -> None:
    import traceback  # only with --debug

    traceback.print_exc()


def _main(argv: list[str], given: set[str]) -> int:
    debug = "--debug" in given
    try:
        return _dispatch(argv, given)
    except BrokenPipeError:
        # stdout closed early (`respin ... | head`): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (Exception, KeyboardInterrupt) as exc:
        if _signalled and not isinstance(exc, (Interrupted, KeyboardInterrupt)):
            raise  # the interruption is what is reported (main)
        return _report(exc, debug)


def _dispatch(argv: list[str], given: set[str]) -> int:
    """Parse the command line and run its command."""
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Reported here, not by argparse's top level: the line names the sub-command.
        raise UsageError(_usage_message(getattr(args, "command", None) or "",
                                        f"unrecognized arguments: {' '.join(extra)}"))
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return UsageError.exit_code
    # A command family that never logs (it writes its own warnings) says so with
    # `set_defaults(logs=False)` and is spared importing logging.
    if getattr(args, "logs", True):
        _configure_logging(given)
    return int(args.func(args))


def _report(exc: BaseException, debug: bool) -> int:
    """One line on stderr for an error (errors.report); its exit code."""
    said = report(exc)
    print(said.line(), file=sys.stderr)
    if isinstance(exc, RespinError) and exc.hint and debug:
        print(exc.hint, file=sys.stderr)
    if debug and not isinstance(exc, KeyboardInterrupt):
        _traceback()
    return said.exit_code


if __name__ == "__main__":
    sys.exit(main())
