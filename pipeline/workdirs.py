"""Which directories respin may write in: a work dir it made, marked as made for one pipeline file.

respin replaces and removes what it finds in its work dir (each stage's outputs, the
trees its domains lay out there), so it writes only in a directory it made itself:
one that did not exist, or an empty one it adopts. It leaves a mark there, naming the
pipeline file it was made for; any other non-empty directory, or one made for another
pipeline file, is refused before anything is written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from respin.pipeline import __version__, fsutil
from respin.pipeline.errors import RespinError

MARK = ".respin-workdir"
LOCK = ".lock"
# What a work dir made before the mark existed holds (pipeline/runner.py writes both).
_OLD_STATE, _OLD_MANIFEST = "state", "manifest.json"


def _read_json(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            return json.loads(fh.read(1 << 20))
    except (OSError, ValueError):
        return None


def _made_for(workdir: Path) -> tuple[str | None, bool]:
    """The pipeline file `workdir` was made for, and whether it is respin's at all."""
    mark = _read_json(workdir / MARK)
    if isinstance(mark, dict) and isinstance(mark.get("pipeline"), str):
        return mark["pipeline"], True
    if os.path.lexists(workdir / MARK):
        return None, True  # damaged: respin's, made for no pipeline file it can name
    if (workdir / _OLD_STATE).is_dir() and not (workdir / _OLD_STATE).is_symlink():
        manifest = _read_json(workdir / _OLD_MANIFEST)
        if isinstance(manifest, dict) and isinstance(manifest.get("pipeline"), str):
            return manifest["pipeline"], True  # made by an earlier respin, before the mark
    return None, False


def check(workdir: Path, pipeline: Path, given: str, error: type[RespinError]) -> None:
    """Refuse `workdir` unless respin may write there for `pipeline`: it does not exist, is
    empty, or is a work dir respin made for this pipeline file. Reads only."""
    if not workdir.is_dir():
        return
    made_for, ours = _made_for(workdir)
    if ours and made_for == str(pipeline):
        return
    if made_for is not None:
        raise error(f"{given} {workdir}: is the work dir of another pipeline file, {made_for}; "
                    "choose another work dir (or remove this one)")
    if ours:
        raise error(f"{given} {workdir}: its {MARK} names no pipeline file; remove the work dir "
                    "or choose another")
    if any(entry.name != LOCK for entry in os.scandir(workdir)):
        raise error(f"{given} {workdir}: directory exists, is not empty and is no respin work dir "
                    "(respin writes only in a work dir it made); choose a new or empty directory")


def claim(workdir: Path, pipeline: Path) -> bool:
    """Mark `workdir` (checked, and made or locked by the caller) as made for `pipeline`;
    whether it was an empty directory respin adopted just now."""
    made_for, ours = _made_for(workdir)
    if made_for == str(pipeline) and os.path.isfile(workdir / MARK):
        return False
    fsutil.atomic_write(workdir / MARK, json.dumps({"made_by": f"respin {__version__}",
                                                    "pipeline": str(pipeline)}, indent=1) + "\n")
    return not ours


def make(workdir: Path) -> list[Path]:
    """Make `workdir` and any missing parent; the directories made, innermost last."""
    made = []
    for parent in (*reversed(workdir.parents), workdir):
        if not os.path.lexists(parent):
            try:
                parent.mkdir()
            except FileExistsError:
                continue  # another process made it meanwhile: not ours to remove
            made.append(parent)
    return made


def undo(workdir: Path, made: list[Path], adopted: bool) -> None:
    """Remove what a run that began no stage left (the caller holds the lock): the work dir
    and the parents it made (`make`), or what it put in the empty directory it adopted."""
    if made:
        shutil.rmtree(workdir, ignore_errors=True)
        for parent in reversed(made[:-1]):
            with contextlib.suppress(OSError):
                parent.rmdir()  # unless another work dir is in it by now
    elif adopted:
        for entry in os.scandir(workdir):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
