"""rt_tables: the file that gives routing tables their names.

Two ways to stage a name: a drop-in `etc/iproute2/rt_tables.d/<name>.conf`
(the default: it never touches a file the distribution owns, and does not
hide `/usr/share/iproute2/rt_tables` on iproute2 >= 6.5), or a merge into the
image's own `etc/iproute2/rt_tables` that keeps every line it had and adds
respin's entries between two marker lines, so merging again changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from respin.pipeline.errors import InputError
from respin.stages.network.lib.model import RouteTable

RT_TABLES = "etc/iproute2/rt_tables"
RT_TABLES_D = "etc/iproute2/rt_tables.d"
# Used when merging into an image that has no /etc/iproute2/rt_tables: the
# distribution's copy (iproute2 >= 6.5), else the entries iproute2 ships.
RT_TABLES_VENDOR = "usr/share/iproute2/rt_tables"
RT_TABLES_STOCK = (
    "#\n# reserved values\n#\n255\tlocal\n254\tmain\n253\tdefault\n0\tunspec\n#\n# local\n#\n"
)

BEGIN = "# BEGIN respin network: lines up to END are managed by respin"
END = "# END respin network"

# `<decimal|0xhex> <name> [# comment]`, as iproute2 reads it.
_LINE = re.compile(r"\s*(0x[0-9A-Fa-f]+|[0-9]+)\s+(\S+)\s*(#.*)?")


@dataclass(frozen=True)
class Entry:
    """One `id name` line of an rt_tables file."""

    id: int
    name: str
    lineno: int


def dropin_path(table: RouteTable) -> str:
    """Where the drop-in for `table` goes, relative to the image root."""
    return f"{RT_TABLES_D}/{table.name}.conf"


def render_dropin(table: RouteTable, head: str) -> bytes:
    """The content of `table`'s drop-in file."""
    return f"{head}{table.id}\t{table.name}\n".encode()


def parse(text: str, source: str) -> list[Entry]:
    """The entries of an rt_tables file but respin's block, each with its line number in
    `text` (so an error cites the line itself); a line ip would call corrupt is an error naming it."""
    entries: list[Entry] = []
    inside = False
    for lineno, raw in enumerate(text.splitlines(keepends=True), 1):
        marker = raw.rstrip("\n")  # as strip_block compares
        if marker == BEGIN or (inside and marker == END):
            inside = marker == BEGIN
            continue
        line = raw.splitlines()[0]
        stripped = line.strip()
        if inside or not stripped or stripped.startswith("#"):
            continue
        m = _LINE.fullmatch(line)
        if not m:
            # The line itself is not quoted: an image's file may hold anything (a link to a
            # secret is refused before reading, but a copy of one is a regular file).
            raise InputError(f"{source}:{lineno}: not an rt_tables line ('ID NAME')")
        entries.append(Entry(int(m.group(1), 0), m.group(2), lineno))
    return entries


def strip_block(text: str) -> str:
    """`text` without respin's marked block (and without a blank line it left)."""
    out: list[str] = []
    inside = False
    for line in text.splitlines(keepends=True):
        if line.rstrip("\n") == BEGIN:
            inside = True
            continue
        if inside:
            if line.rstrip("\n") == END:
                inside = False
            continue
        out.append(line)
    return "".join(out)


def _clash(existing: Iterable[Entry], table: RouteTable, source: str) -> None:
    for e in existing:
        if e.id == table.id and e.name != table.name:
            raise InputError(f"{source}:{e.lineno}: table id {e.id} is already named '{e.name}'; "
                             f"cannot name it '{table.name}'")
        if e.name == table.name and e.id != table.id:
            raise InputError(f"{source}:{e.lineno}: table name '{e.name}' already means id {e.id}; "
                             f"cannot give it id {table.id}")


def check_clashes(text: str, tables: Iterable[RouteTable], source: str) -> None:
    """Refuse `tables` if the rt_tables content `text` gives one of their ids or names another meaning."""
    existing = parse(text, source)
    for table in tables:
        _clash(existing, table, source)


def merge(text: str, tables: Iterable[RouteTable], source: str) -> str:
    """Add `tables` to the rt_tables content `text`, keeping all its other lines.

    An entry already present with the same id and name is not repeated; one
    that gives the id another name or the name another id is refused.
    """
    base = strip_block(text)
    existing = parse(text, source)
    wanted: list[RouteTable] = []
    for table in tables:
        _clash(existing, table, source)
        if not any(e.id == table.id and e.name == table.name for e in existing):
            wanted.append(table)
    if not wanted:
        return base
    if base and not base.endswith("\n"):
        base += "\n"
    block = "".join(f"{t.id}\t{t.name}\n" for t in wanted)
    return f"{base}{BEGIN}\n{block}{END}\n"
