"""systemd-networkd backend: a `.network` file and a networkd.conf drop-in naming the tables.

networkd does not read rt_tables: a named `Table=` must be declared with
`RouteTable=name:id` in networkd.conf. It also removes routing rules it did
not configure (ManageForeignRoutingPolicyRules=yes by default), so the rules
must be in the `.network` file, as they are here.
"""

from __future__ import annotations

from respin.stages.network.lib.files import Files, header
from respin.stages.network.lib.model import NetworkModel

NETWORK_DIR = "etc/systemd/network"
NETWORKD_CONF_D = "etc/systemd/networkd.conf.d"


def network_path(model: NetworkModel) -> str:
    """Where the `.network` file goes; the prefix orders it before distribution defaults."""
    return f"{NETWORK_DIR}/10-respin-{model.device}.network"


def render(model: NetworkModel) -> Files:
    """The `.network` file and, if there are aliases, the RouteTable= drop-in."""
    head = header(model)
    out = [head.rstrip("\n"), "[Match]", f"Name={model.device}", "",
           "[Network]", f"Gateway={model.gateway}", "",
           "[Address]", f"Address={model.address}"]
    for alias in model.aliases:
        out += ["", "[Address]", f"Address={alias.address}", f"Label={alias.label}"]
    for alias in model.aliases:
        for net, src in model.table_routes(alias):
            out += ["", "[Route]", f"Destination={net}", f"PreferredSource={src}", "Scope=link",
                    f"Table={alias.table.name}"]
        out += ["", "[Route]", f"Gateway={alias.gateway}", f"Table={alias.table.name}"]
    for alias in model.aliases:
        out += ["", "[RoutingPolicyRule]", f"From={alias.address.ip}", f"Table={alias.table.name}",
                f"Priority={alias.priority}"]
        out += ["", "[RoutingPolicyRule]", f"To={alias.address.ip}", f"Table={alias.table.name}",
                f"Priority={alias.priority + 1}"]
    files: dict[str, tuple[bytes, int]] = {network_path(model): (("\n".join(out) + "\n").encode(), 0o644)}
    if model.aliases:
        tables = " ".join(f"{a.table.name}:{a.table.id}" for a in model.aliases)
        conf = f"{head}[Network]\nRouteTable={tables}\n"
        files[f"{NETWORKD_CONF_D}/respin-{model.device}-route-tables.conf"] = (conf.encode(), 0o644)
    return dict(sorted(files.items()))
