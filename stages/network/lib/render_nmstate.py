"""nmstate backend: one YAML desired-state file that nmstate.service applies at boot.

nmstate takes numeric route tables only, so the table name is not used.
The YAML is written directly (a fixed, small shape) rather than through a
YAML library, so the output is byte-stable and needs no dependency.
"""

from __future__ import annotations

import json

from respin.stages.network.lib.files import Files, header
from respin.stages.network.lib.model import NetworkModel

NMSTATE_DIR = "etc/nmstate"


def _q(text: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar: names like "yes"
    # or "1" stay strings.
    return json.dumps(text)


def render(model: NetworkModel) -> Files:
    """The nmstate file for `model`."""
    dev = _q(model.device)
    out = [header(model).rstrip("\n"), "interfaces:", f"- name: {dev}", "  type: ethernet",
           "  state: up", "  ipv4:", "    enabled: true", "    dhcp: false", "    address:"]
    for iface in model.interfaces():
        out += [f"    - ip: {iface.ip}", f"      prefix-length: {iface.network.prefixlen}"]
    out += ["routes:", "  config:",
            "  - destination: 0.0.0.0/0", f"    next-hop-address: {model.gateway}",
            f"    next-hop-interface: {dev}"]
    for alias in model.aliases:
        for net, src in model.table_routes(alias):
            out += [f"  - destination: {net}", f"    next-hop-interface: {dev}",
                    f"    source: {src}", f"    table-id: {alias.table.id}"]
        out += ["  - destination: 0.0.0.0/0", f"    next-hop-address: {alias.gateway}",
                f"    next-hop-interface: {dev}", f"    table-id: {alias.table.id}"]
    if model.aliases:
        out += ["route-rules:", "  config:"]
        for alias in model.aliases:
            out += [f"  - ip-from: {alias.address.ip}/32", f"    priority: {alias.priority}",
                    f"    route-table: {alias.table.id}",
                    f"  - ip-to: {alias.address.ip}/32", f"    priority: {alias.priority + 1}",
                    f"    route-table: {alias.table.id}"]
    path = f"{NMSTATE_DIR}/respin-{model.device}.yml"
    return {path: (("\n".join(out) + "\n").encode(), 0o644)}
