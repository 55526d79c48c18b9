"""The networkd and NetworkManager files, applied by the real daemons in a network namespace.

The golden files prove what respin writes; this proves each daemon reads it as
meant: the alias addresses, one routing table per alias with the subnet
routes and the alias's gateway, the `from`/`to` rules at the model's
priorities, and the primary gateway in the main table (and, for networkd,
each alias address's label).

Each daemon runs in private PID, network and mount namespaces: its
configuration directory holds only the rendered files, /run is empty, and
sysfs is mounted read-only, which is how both daemons know no udev will
announce the links (as in a container). When the namespace's shell ends,
every process started in it ends too.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from respin_cli import skip_by_design

from respin.stages.network.lib.model import NetworkModel, load_model
from respin.stages.network.lib.render import render
from respin.stages.network.lib.root import write_tree

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "network"


def _first(*paths: str) -> str | None:
    return next((p for p in paths if os.access(p, os.X_OK)), None)


NETWORKD = _first("/usr/lib/systemd/systemd-networkd", "/lib/systemd/systemd-networkd")
NETWORKMANAGER = _first("/usr/sbin/NetworkManager", "/sbin/NetworkManager")
DBUS_DAEMON = shutil.which("dbus-daemon")

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="PID, network and mount namespaces need root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (ip) is not installed"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is not installed"),
]

# Common to both: a veth eth0, an empty /run and a read-only sysfs. $1 = the rendered
# root; it waits for the rule priorities in $2, and for $4 routes in each table of $3
# and a default route in main; START starts the daemon in the background.
_SCRIPT = r"""
set -eu
root=$1 want=$2 tables=$3 per_table=$4
ip link set lo up
ip link add eth0 type veth peer name peer0
ip link set peer0 up
mount -t tmpfs respin /run
mount -t sysfs -o ro sysfs /sys
@START@
for _ in $(seq 200); do
    have=$(ip -j rule | tr -d ' ')
    missing=0
    for prio in $want; do
        case $have in *"\"priority\":$prio,"*) ;; *) missing=1 ;; esac
    done
    for table in $tables; do
        [ "$(ip -4 route show table "$table" | wc -l)" -ge "$per_table" ] || missing=1
    done
    ip -4 route show table main | grep -q '^default ' || missing=1
    [ "$missing" = 0 ] && break
    sleep 0.1
done
printf '{"rules": %s, "addrs": %s, "routes": %s}\n' \
    "$(ip -j rule)" "$(ip -j -4 addr show dev eth0)" "$(ip -j -4 route show table all)"
"""

_START = {
    "networkd": r"""
mount -t tmpfs respin /etc/systemd
cp -a "$root/etc/systemd/." /etc/systemd/
@DAEMON@ >"$root/../daemon.log" 2>&1 &
""",
    # NetworkManager needs the system bus: a private one, in the private /run.
    "networkmanager": r"""
mount -t tmpfs respin /etc/NetworkManager
mount -t tmpfs respin /var/lib/NetworkManager
cp -a "$root/etc/NetworkManager/." /etc/NetworkManager/
printf '[main]\nplugins=keyfile\n' >/etc/NetworkManager/NetworkManager.conf
mkdir -p /run/dbus
@DBUS@ --system --fork --nopidfile
@DAEMON@ --no-daemon --debug >"$root/../daemon.log" 2>&1 &
""",
}


def _apply(backend: str, model: NetworkModel, tmp_path: Path) -> dict[str, list[dict[str, object]]]:
    root = tmp_path / "root"
    write_tree(render(model, backend), root)  # type: ignore[arg-type]
    daemon = NETWORKD if backend == "networkd" else NETWORKMANAGER
    start = _START[backend].replace("@DAEMON@", shlex.quote(str(daemon)))
    start = start.replace("@DBUS@", shlex.quote(str(DBUS_DAEMON)))
    priorities = " ".join(str(p) for a in model.aliases for p in (a.priority, a.priority + 1))
    tables = " ".join(str(a.table.id) for a in model.aliases)
    # Each alias table: a route to every subnet of the device, and the default route.
    per_table = len({model.address.network, *(a.address.network for a in model.aliases)}) + 1
    argv = ["unshare", "--pid", "--fork", "--mount-proc", "--net", "--mount", "--propagation", "private",
            "sh", "-c", _SCRIPT.replace("@START@", start), "sh", str(root), priorities, tables,
            str(per_table)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False,
                          stdin=subprocess.DEVNULL)
    log_file = tmp_path / "daemon.log"
    log = log_file.read_text(errors="replace") if log_file.exists() else ""
    assert proc.returncode == 0, f"{backend}: exit {proc.returncode}\n{proc.stderr}\n{log[-3000:]}"
    state: dict[str, list[dict[str, object]]] = json.loads(proc.stdout)
    return state


@pytest.mark.parametrize("name", ["net.toml", "two-aliases.toml"])
@pytest.mark.parametrize("backend", ["networkd", "networkmanager"])
def test_daemon_applies_the_policy_routing(backend: str, name: str, tmp_path: Path,
                                          request: pytest.FixtureRequest) -> None:
    if backend == "networkd" and NETWORKD is None:
        pytest.skip("systemd-networkd is not installed (package systemd)")
    if backend == "networkmanager" and (NETWORKMANAGER is None or DBUS_DAEMON is None):
        reason = ("NetworkManager or dbus-daemon is not installed (packages network-manager, dbus; "
                  "on a host booted with systemd, make test installs NetworkManager only with "
                  "INSTALL_SERVICES=1)")
        if Path("/run/systemd/system").is_dir():  # left out on purpose: its install starts a daemon
            skip_by_design(request, reason)
        pytest.skip(reason)
    model = load_model(FIXTURES / name)
    state = _apply(backend, model, tmp_path)

    addrs = {(a["local"], a["prefixlen"]): a.get("label")
             for link in state["addrs"] for a in link["addr_info"]}  # type: ignore[attr-defined]
    assert (str(model.address.ip), model.address.network.prefixlen) in addrs
    for alias in model.aliases:
        key = (str(alias.address.ip), alias.address.network.prefixlen)
        assert key in addrs
        if backend == "networkd":  # NetworkManager has no address labels
            assert addrs[key] == alias.label

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
