"""The `ip` script: the same setup applied to a running host, safe to run any number of times.

Addresses and routes use `replace`, which is idempotent. `ip rule add` is
not (without a priority it adds a duplicate every time), so each rule is
added only if `ip rule show` with the same selector finds nothing. Tables
are given by number, so the script does not depend on the host's rt_tables.
Unlike the seed, it does not flush the alias table first (that would cut the
alias off for a moment); a route no longer in the model stays until removed.
"""

from __future__ import annotations

from respin.stages.network.lib.files import header
from respin.stages.network.lib.model import NetworkModel
from respin.stages.network.lib.render_initscripts import route_lines, rule_lines


def render(model: NetworkModel) -> str:
    """The POSIX sh script for `model`."""
    dev = model.device
    out = [
        "#!/bin/sh",
        header(model).rstrip("\n"),
        "# Policy routing: each alias address leaves through its own gateway and table.",
        "set -eu",
        "",
        f"ip link set dev {dev} up",
        f"ip -4 address replace {model.address} dev {dev}",
    ]
    for alias in model.aliases:
        out.append(f"ip -4 address replace {alias.address} dev {dev} label {alias.label}")
    out.append(f"ip -4 route replace default via {model.gateway} dev {dev}")
    for alias in model.aliases:
        table = str(alias.table.id)
        out += ["", f"# {alias.label}: table {alias.table.id} ({alias.table.name})"]
        out += [f"ip -4 route replace {line}" for line in route_lines(model, alias, table)]
        for rule in rule_lines(alias, table):
            # `ip rule show SELECTOR` prints the rule if it exists, nothing otherwise.
            out.append(f'[ -n "$(ip -4 rule show {rule})" ] || ip -4 rule add {rule}')
    return "\n".join(out) + "\n"
