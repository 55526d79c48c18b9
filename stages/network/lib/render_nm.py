"""NetworkManager backend: one keyfile connection profile for the device.

Aliases become extra addresses of the profile (keyfiles have no labels).
Keyfile routes and routing rules take numeric tables only, and a routing
rule needs an explicit priority; both come from the model.
"""

from __future__ import annotations

import uuid

from respin.stages.network.lib.files import Files, header
from respin.stages.network.lib.model import NetworkModel

CONNECTIONS_DIR = "etc/NetworkManager/system-connections"
# A fixed namespace makes the profile uuid a function of the device name, so
# rendering twice gives the same bytes.
_UUID_NAMESPACE = uuid.UUID("6f0e3c52-3d1e-4d2b-9a52-2f6b1f1b7c11")


def profile_uuid(device: str) -> str:
    """The stable uuid of the profile for `device`."""
    return str(uuid.uuid5(_UUID_NAMESPACE, f"respin-network/{device}"))


def render(model: NetworkModel) -> Files:
    """The keyfile for `model`; NetworkManager ignores keyfiles not owned by root with mode 0600."""
    lines = [
        header(model).rstrip("\n"),
        "[connection]",
        f"id={model.device}",
        f"uuid={profile_uuid(model.device)}",
        "type=ethernet",
        f"interface-name={model.device}",
        "autoconnect=true",
        "",
        "[ethernet]",
        "",
        "[ipv4]",
        "method=manual",
    ]
    for n, iface in enumerate(model.interfaces(), 1):
        lines.append(f"address{n}={iface}")
    lines.append(f"gateway={model.gateway}")
    n = 0
    for alias in model.aliases:
        for net, src in model.table_routes(alias):
            n += 1
            lines.append(f"route{n}={net}")
            lines.append(f"route{n}_options=table={alias.table.id},src={src}")
        n += 1
        lines.append(f"route{n}=0.0.0.0/0,{alias.gateway}")
        lines.append(f"route{n}_options=table={alias.table.id}")
    r = 0
    for alias in model.aliases:
        # The table name is only a comment here: keyfiles take numbers.
        r += 1
        lines.append(f"routing-rule{r}=priority {alias.priority} from {alias.address.ip} "
                     f"table {alias.table.id}")
        r += 1
        lines.append(f"routing-rule{r}=priority {alias.priority + 1} to {alias.address.ip} "
                     f"table {alias.table.id}")
    path = f"{CONNECTIONS_DIR}/{model.device}.nmconnection"
    return {path: ("\n".join(lines).encode() + b"\n", 0o600)}
