"""The systemd-networkd files, applied by the real systemd-networkd in a network namespace.

The golden files prove what respin writes; this proves networkd reads it as
meant: each alias address with its label, one routing table per alias (named
through networkd.conf.d's RouteTable=) with the subnet routes and the alias's
gateway, the `from`/`to` rules at the model's priorities, and the primary
gateway in the main table.

networkd runs in a private network and mount namespace: /etc/systemd holds only
the rendered files, /run is empty, and sysfs is mounted read-only, which is how
networkd knows no udev will announce the links (as in a container).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from stages.network.model import NetworkModel, load_model
from stages.network.render import render
from stages.network.root import write_tree

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "network"


def _networkd() -> str | None:
    for path in ("/usr/lib/systemd/systemd-networkd", "/lib/systemd/systemd-networkd"):
        if os.access(path, os.X_OK):
            return path
    return None


pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="network and mount namespaces need root"),
    pytest.mark.skipif(_networkd() is None, reason="systemd-networkd is not installed (package systemd)"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (ip) is not installed"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is not installed"),
]

# Runs inside `unshare --net --mount`: $1 = the rendered root, $2 = networkd, $3 = the
# rule priorities to wait for. Prints the JSON state once every rule is in place.
_SCRIPT = r"""
set -eu
root=$1 networkd=$2 want=$3
ip link set lo up
ip link add eth0 type veth peer name peer0
ip link set peer0 up
mount -t tmpfs respin /etc/systemd
cp -a "$root/etc/systemd/." /etc/systemd/
mount -t tmpfs respin /run
mount -t sysfs -o ro sysfs /sys
"$networkd" >"$root/../networkd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    have=$(ip -j rule | tr -d ' ')
    missing=0
    for prio in $want; do
        case $have in *"\"priority\":$prio,"*) ;; *) missing=1 ;; esac
    done
    [ "$missing" = 0 ] && break
    sleep 0.1
done
# Routes follow the rules within the same configuration pass; give them a moment.
sleep 0.5
printf '{"rules": %s, "addrs": %s, "routes": %s}\n' \
    "$(ip -j rule)" "$(ip -j -4 addr show dev eth0)" "$(ip -j -4 route show table all)"
kill "$pid"
wait "$pid" || true
"""


def _apply(model: NetworkModel, tmp_path: Path) -> dict[str, list[dict[str, object]]]:
    root = tmp_path / "root"
    write_tree(render(model, "networkd"), root)
    priorities = " ".join(str(p) for a in model.aliases for p in (a.priority, a.priority + 1))
    argv = ["unshare", "--net", "--mount", "--propagation", "private",
            "sh", "-c", _SCRIPT, "sh", str(root), str(_networkd()), priorities]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)
    log_file = tmp_path / "networkd.log"
    log = log_file.read_text(errors="replace") if log_file.exists() else ""
    assert proc.returncode == 0, f"{shlex.join(argv[:6])} -> {proc.returncode}\n{proc.stderr}\n{log[-3000:]}"
    state: dict[str, list[dict[str, object]]] = json.loads(proc.stdout)
    return state


@pytest.mark.parametrize("name", ["net.toml", "two-aliases.toml"])
def test_networkd_applies_the_policy_routing(name: str, tmp_path: Path) -> None:
    model = load_model(FIXTURES / name)
    state = _apply(model, tmp_path)

    addrs = {(a["local"], a["prefixlen"], a.get("label"))
             for link in state["addrs"] for a in link["addr_info"]}  # type: ignore[attr-defined]
    assert (str(model.address.ip), model.address.network.prefixlen, model.device) in addrs
    for alias in model.aliases:
        assert (str(alias.address.ip), alias.address.network.prefixlen, alias.label) in addrs

    rules = {(r["priority"], r.get("src"), r.get("dst"), str(r["table"])) for r in state["rules"]}
    for alias in model.aliases:
        ip, table = str(alias.address.ip), str(alias.table.id)
        assert (alias.priority, ip, None, table) in rules
        assert (alias.priority + 1, "all", ip, table) in rules  # ip -j says "all" for no `from`

    routes = {(str(r.get("table", "main")), r["dst"], r.get("gateway")) for r in state["routes"]}
    assert ("main", "default", str(model.gateway)) in routes
    for alias in model.aliases:
        table = str(alias.table.id)
        assert (table, "default", str(alias.gateway)) in routes
        # Every subnet of the device is reachable directly from each alias's table.
        for subnet in {model.address.network, *(a.address.network for a in model.aliases)}:
            assert (table, str(subnet), None) in routes
