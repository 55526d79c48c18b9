"""initscripts (network-scripts) backend: the seed's files, made safe to stage again.

- `ifcfg-eth0` for the parent: the main address and the one default route.
- `ifcfg-eth0:N` for each alias, with no GATEWAY: ifup-aliases would replace
  the main default route with it. The alias gateway lives in its table only.
- `route-eth0:N`: the main table's non-default routes copied into the alias
  table, then `default via` the alias gateway. ifup-routes passes each line
  to `ip route add`, so lines are plain `ip route` arguments.
- `rule-eth0:N`: `from` and `to` rules at explicit priorities, so a second
  `ip rule add` fails with "File exists" instead of adding a duplicate.
- The table names, as rt_tables drop-ins or merged into `rt_tables`.
"""

from __future__ import annotations

from typing import Literal

from respin.stages.network.lib import rt_tables
from respin.stages.network.lib.files import Files, header
from respin.stages.network.lib.model import Alias, NetworkModel

SCRIPTS_DIR = "etc/sysconfig/network-scripts"

RtTablesMode = Literal["d", "merge"]


def _ifcfg_parent(model: NetworkModel, head: str) -> str:
    # NM_CONTROLLED=no: NetworkManager's ifcfg-rh reader would ignore route-*
    # files next to rule-* files and fold the aliases into the parent.
    return (f"{head}DEVICE={model.device}\nBOOTPROTO=none\nONBOOT=yes\nNM_CONTROLLED=no\n"
            f"IPADDR={model.address.ip}\nPREFIX={model.address.network.prefixlen}\n"
            f"GATEWAY={model.gateway}\nDEFROUTE=yes\n")


def _ifcfg_alias(alias: Alias, head: str) -> str:
    # No ONBOOT (not valid for aliases) and no GATEWAY (see the module docstring).
    return (f"{head}DEVICE={alias.label}\nIPADDR={alias.address.ip}\n"
            f"PREFIX={alias.address.network.prefixlen}\nONPARENT=yes\nNM_CONTROLLED=no\n")


def route_lines(model: NetworkModel, alias: Alias, table: str) -> list[str]:
    """The `ip route` arguments that fill `alias`'s table; `table` is its name or id."""
    lines = [f"table {table} {net} dev {model.device} scope link src {src}"
             for net, src in model.table_routes(alias)]
    lines.append(f"table {table} default via {alias.gateway} dev {model.device}")
    return lines


def rule_lines(alias: Alias, table: str) -> list[str]:
    """The `ip rule` arguments that send `alias`'s traffic to its table."""
    return [f"from {alias.address.ip} lookup {table} priority {alias.priority}",
            f"to {alias.address.ip} lookup {table} priority {alias.priority + 1}"]


def render(model: NetworkModel, *, rt_tables_mode: RtTablesMode = "d",
           rt_tables_base: str | None = None, rt_tables_source: str = rt_tables.RT_TABLES) -> Files:
    """The initscripts files for `model`.

    With `rt_tables_mode="merge"`, `rt_tables_base` is the image's current
    `etc/iproute2/rt_tables` (or its vendor copy, or None for iproute2's stock
    entries) and the result holds the merged file instead of drop-ins.
    """
    head = header(model)
    files: dict[str, tuple[bytes, int]] = {
        f"{SCRIPTS_DIR}/ifcfg-{model.device}": (_ifcfg_parent(model, head).encode(), 0o644),
    }
    for alias in model.aliases:
        name = alias.table.name
        files[f"{SCRIPTS_DIR}/ifcfg-{alias.label}"] = (_ifcfg_alias(alias, head).encode(), 0o644)
        routes = "".join(f"{line}\n" for line in route_lines(model, alias, name))
        files[f"{SCRIPTS_DIR}/route-{alias.label}"] = (f"{head}{routes}".encode(), 0o644)
        rules = "".join(f"{line}\n" for line in rule_lines(alias, name))
        files[f"{SCRIPTS_DIR}/rule-{alias.label}"] = (f"{head}{rules}".encode(), 0o644)
    tables = [a.table for a in model.aliases]
    if rt_tables_mode == "merge":
        if tables:
            base = rt_tables.RT_TABLES_STOCK if rt_tables_base is None else rt_tables_base
            merged = rt_tables.merge(base, tables, rt_tables_source)
            files[rt_tables.RT_TABLES] = (merged.encode(), 0o644)
    else:
        for table in tables:
            files[rt_tables.dropin_path(table)] = (rt_tables.render_dropin(table, head), 0o644)
    return dict(sorted(files.items()))
