"""The fast path of a short command, in one place.

Start-up is most of the run of a short command (a provider's listing of a small
input takes a few milliseconds once Python is up), so every `respin` call
follows three rules, and tests/pipeline/test_runner.py checks that such a
command loads none of DEFERRED:

1. respin's own commands and stages are found from respin's own
   entry_points.txt, parsed here: importlib.metadata would read every installed
   distribution's metadata first. Plugins are looked up through
   importlib.metadata only when the command is not respin's own.
2. `respin <command>` imports only the module that registers <command>; the
   engine's runner and stage contract are imported by the commands that run
   pipelines.
3. The modules on a short command's path (the CLI, the registry, a provider's
   cli.py and what it reads images with) import the DEFERRED modules inside
   the function that needs them, and use plain classes or named tuples where
   a dataclass would pull in `dataclasses`. A deferred import says so with
   "deferred: pipeline/startup.py".
"""

from __future__ import annotations

import os
import sys
from functools import cache

OWN_DIST = "respin"

# What a short command must not load (each costs a few milliseconds of start-up).
DEFERRED = frozenset({"importlib.metadata", "dataclasses", "json", "tempfile", "logging", "pathlib",
                      "threading", "respin.pipeline.runner", "respin.pipeline.stage",
                      "respin.pipeline.commands"})


def own_entry_points(group: str) -> dict[str, str]:
    """respin's own entry points of `group` (name -> "module:attr"), read straight from
    its installed metadata: the first respin-*.dist-info on sys.path, as importlib.metadata
    would pick. Empty when respin is not installed."""
    return _own_entry_points().get(group, {})


@cache
def _own_entry_points() -> dict[str, dict[str, str]]:
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:
            continue
        for name in names:
            # dist-info names are normalized: respin-X, never respin_plugin-X for respin.
            if name.startswith(f"{OWN_DIST}-") and name.endswith(".dist-info"):
                try:
                    with open(os.path.join(entry or ".", name, "entry_points.txt"), encoding="utf-8") as fh:
                        text = fh.read()
                except OSError:
                    return {}
                return _parse_entry_points(text)
    return {}


def _parse_entry_points(text: str) -> dict[str, dict[str, str]]:
    groups: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = groups.setdefault(line[1:-1].strip(), {})
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    return groups
