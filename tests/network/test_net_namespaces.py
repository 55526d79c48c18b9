"""End to end in network namespaces: the rendered files and the ip script really route.

Topology (all TEST-NET addresses, all inside namespaces made for this run):

    host eth0 192.0.2.10/24 + eth0:1 198.51.100.10/24
      |
    lan br0 ---- gw1 lan0 192.0.2.1/24     wan0 203.0.113.1/30 ---- inet 203.0.113.2/30
           \\--- gw2 lan0 198.51.100.1/24  wan0 203.0.113.5/30 ---- inet 203.0.113.6/30
                                                                    inet lo 203.0.113.100/32

"inet" is reachable from the host only through a gateway. Each gateway
counts forwarded echo requests per source address with nft counters, so a
ping that leaves through the wrong gateway is seen.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from respin.stages.network.lib import script
from respin.stages.network.lib.model import load_model
from respin.stages.network.lib.render import render
from respin.stages.network.lib.root import stage_into_root

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "network" / "net.toml"
SCRIPTS = "etc/sysconfig/network-scripts"
TARGET = "203.0.113.100"
PRIMARY = "192.0.2.10"
ALIAS = "198.51.100.10"

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(shutil.which("ip") is None, reason="iproute2 (ip) is not installed"),
    pytest.mark.skipif(shutil.which("ping") is None, reason="ping (iputils-ping) is not installed"),
    pytest.mark.skipif(shutil.which("nft") is None, reason="nft (nftables) is not installed"),
    pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare (util-linux) is not installed"),
]


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure show it with its output."""
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} -> {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return proc


def ip_with_image_etc(image: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`ip ARGS` in a private mount namespace where /etc/iproute2 is the image's.

    So table names resolve through the image's rt_tables (and rt_tables.d),
    not the test machine's.
    """
    return sh("unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
              'mount --bind "$0" /etc/iproute2 && exec "$@"', str(image / "etc" / "iproute2"),
              "ip", *args, check=check)


@dataclass
class Lab:
    """The namespaces of one test, by role."""

    host: str
    lan: str
    gw1: str
    gw2: str
    inet: str

    def all(self) -> list[str]:
        return [self.host, self.lan, self.gw1, self.gw2, self.inet]

    def ip(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "-n", ns, *args, check=check)

    def in_ns(self, ns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", ns, *argv, check=check)

    def counters(self, gw: str) -> dict[str, int]:
        """Echo requests forwarded by `gw`, by source ("primary", "alias")."""
        out = {}
        for name in ("primary", "alias"):
            data = json.loads(self.in_ns(gw, "nft", "-j", "list", "counter", "ip", "respin", name).stdout)
            counter = next(item["counter"] for item in data["nftables"] if "counter" in item)
            out[name] = int(counter["packets"])
        return out

    def ping(self, source: str | None, count: int = 3) -> None:
        bind = ["-I", source] if source else []
        self.in_ns(self.host, "ping", "-n", "-q", "-c", str(count), "-i", "0.2", "-W", "2", *bind, TARGET)


def _sysctl(lab: Lab, ns: str, key: str, value: str) -> None:
    lab.in_ns(ns, "sh", "-c", f"echo {value} > /proc/sys/{key.replace('.', '/')}")


def _build(lab: Lab) -> None:
    for ns in lab.all():
        sh("ip", "netns", "add", ns)
        lab.ip(ns, "link", "set", "lo", "up")
    # Links are created inside the namespaces, so no name ever exists on the test machine.
    lab.ip(lab.lan, "link", "add", "br0", "type", "bridge")
    lab.ip(lab.host, "link", "add", "eth0", "type", "veth", "peer", "name", "hp", "netns", lab.lan)
    lab.ip(lab.gw1, "link", "add", "lan0", "type", "veth", "peer", "name", "g1p", "netns", lab.lan)
    lab.ip(lab.gw2, "link", "add", "lan0", "type", "veth", "peer", "name", "g2p", "netns", lab.lan)
    lab.ip(lab.gw1, "link", "add", "wan0", "type", "veth", "peer", "name", "i1", "netns", lab.inet)
    lab.ip(lab.gw2, "link", "add", "wan0", "type", "veth", "peer", "name", "i2", "netns", lab.inet)
    for port in ("hp", "g1p", "g2p"):
        lab.ip(lab.lan, "link", "set", port, "master", "br0")
        lab.ip(lab.lan, "link", "set", port, "up")
    lab.ip(lab.lan, "link", "set", "br0", "up")

    for gw, lan_addr, wan_addr, peer in (
        (lab.gw1, "192.0.2.1/24", "203.0.113.1/30", "203.0.113.2"),
        (lab.gw2, "198.51.100.1/24", "203.0.113.5/30", "203.0.113.6"),
    ):
        lab.ip(gw, "addr", "add", lan_addr, "dev", "lan0")
        lab.ip(gw, "addr", "add", wan_addr, "dev", "wan0")
        lab.ip(gw, "link", "set", "lan0", "up")
        lab.ip(gw, "link", "set", "wan0", "up")
        lab.ip(gw, "route", "add", "default", "via", peer)
        _sysctl(lab, gw, "net.ipv4.ip_forward", "1")
        ruleset = (
            "table ip respin {\n"
            "  counter primary {}\n  counter alias {}\n"
            "  chain counted {\n    type filter hook forward priority 0; policy accept;\n"
            f"    ip saddr {PRIMARY} icmp type echo-request counter name primary\n"
            f"    ip saddr {ALIAS} icmp type echo-request counter name alias\n  }}\n}}\n"
        )
        proc = subprocess.run(["ip", "netns", "exec", gw, "nft", "-f", "-"], input=ruleset, text=True,
                              capture_output=True, check=False)
        assert proc.returncode == 0, proc.stderr

    lab.ip(lab.inet, "addr", "add", "203.0.113.2/30", "dev", "i1")
    lab.ip(lab.inet, "addr", "add", "203.0.113.6/30", "dev", "i2")
    lab.ip(lab.inet, "addr", "add", f"{TARGET}/32", "dev", "lo")
    lab.ip(lab.inet, "link", "set", "i1", "up")
    lab.ip(lab.inet, "link", "set", "i2", "up")
    # Replies go back the way each source came in.
    lab.ip(lab.inet, "route", "add", "192.0.2.0/24", "via", "203.0.113.1")
    lab.ip(lab.inet, "route", "add", "198.51.100.0/24", "via", "203.0.113.5")
    lab.ip(lab.host, "link", "set", "eth0", "up")


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Fresh namespaces with names unique to this run; always deleted, even on failure."""
    tag = f"rn{os.getpid() % 100000}{secrets.token_hex(3)}"
    lab = Lab(*(f"{tag}-{role}" for role in ("host", "lan", "gw1", "gw2", "inet")))
    try:
        _build(lab)
        yield lab
    finally:
        for ns in lab.all():
            sh("ip", "netns", "del", ns, check=False)


def _ifcfg(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key] = value.strip('"')
    return out


def _apply_like_initscripts(lab: Lab, image: Path) -> None:
    """What ifup eth0 does with the staged files: parent, then aliases, then their routes and rules."""
    scripts = image / SCRIPTS
    parent = _ifcfg(scripts / "ifcfg-eth0")

    def ip(*args: str) -> None:
        ip_with_image_etc(image, "-n", lab.host, *args)

    ip("addr", "add", f"{parent['IPADDR']}/{parent['PREFIX']}", "dev", parent["DEVICE"])
    ip("route", "replace", "default", "via", parent["GATEWAY"], "dev", parent["DEVICE"])
    for cfg in sorted(scripts.glob("ifcfg-eth0:*")):
        alias = _ifcfg(cfg)
        # GATEWAY here would make ifup-aliases replace the main default route.
        assert "GATEWAY" not in alias
        label = alias["DEVICE"]
        ip("addr", "add", f"{alias['IPADDR']}/{alias['PREFIX']}", "brd", "+", "dev", "eth0", "label", label)
        # ifup-routes: each non-blank, non-comment line word-split after `ip route add`,
        # retried as `replace`; each rule line after `ip rule add`.
        for line in (scripts / f"route-{label}").read_text().splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            words = line.split()
            if ip_with_image_etc(image, "-n", lab.host, "-4", "route", "add", *words,
                                 check=False).returncode != 0:
                ip("-4", "route", "replace", *words)
        for line in (scripts / f"rule-{label}").read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                ip("-4", "rule", "add", *line.split())


def _assert_routing(lab: Lab) -> None:
    via_alias = lab.ip(lab.host, "route", "get", TARGET, "from", ALIAS).stdout
    assert "via 198.51.100.1" in via_alias, via_alias
    via_main = lab.ip(lab.host, "route", "get", TARGET).stdout
    assert "via 192.0.2.1" in via_main and f"src {PRIMARY}" in via_main, via_main
    via_primary = lab.ip(lab.host, "route", "get", TARGET, "from", PRIMARY).stdout
    assert "via 192.0.2.1" in via_primary, via_primary

    before1, before2 = lab.counters(lab.gw1), lab.counters(lab.gw2)
    lab.ping(ALIAS, count=3)
    lab.ping(PRIMARY, count=2)
    lab.ping(None, count=1)  # no source chosen: the main table and the primary address
    after1, after2 = lab.counters(lab.gw1), lab.counters(lab.gw2)
    assert after2["alias"] - before2["alias"] == 3
    assert after1["alias"] - before1["alias"] == 0
    assert after1["primary"] - before1["primary"] == 3
    assert after2["primary"] - before2["primary"] == 0


@pytest.mark.parametrize("rt_tables_mode", ["d", "merge"])
def test_net_initscripts_files_route_through_both_gateways(lab: Lab, tmp_path: Path,
                                                           rt_tables_mode: str) -> None:
    image = tmp_path / "image"
    (image / "etc" / "iproute2").mkdir(parents=True)
    if rt_tables_mode == "merge":
        # An image with a stock rt_tables of its own, merged into.
        shutil.copy(FIXTURE.parent / "rt_tables.stock", image / "etc/iproute2/rt_tables")
    model = load_model(FIXTURE)
    files = render(model, "initscripts", rt_tables_mode=rt_tables_mode,  # type: ignore[arg-type]
                   rt_tables_base=(image / "etc/iproute2/rt_tables").read_text()
                   if rt_tables_mode == "merge" else None)
    merged = frozenset({"etc/iproute2/rt_tables"}) if rt_tables_mode == "merge" else frozenset()
    stage_into_root(files, image, merged=merged)

    _apply_like_initscripts(lab, image)

    # The image's rt_tables names table 1 "test"; the test machine's does not.
    rules = ip_with_image_etc(image, "-n", lab.host, "rule", "show").stdout
    assert f"1000:\tfrom {ALIAS} lookup test" in rules, rules
    assert f"1001:\tfrom all to {ALIAS} lookup test" in rules, rules
    table = ip_with_image_etc(image, "-n", lab.host, "route", "show", "table", "test").stdout
    assert "default via 198.51.100.1 dev eth0" in table, table
    assert "192.0.2.0/24 dev eth0 scope link src 192.0.2.10" in table, table
    _assert_routing(lab)


def test_net_ip_script_twice_routes_and_adds_no_duplicates(lab: Lab, tmp_path: Path) -> None:
    setup = tmp_path / "setup.sh"
    setup.write_text(script.render(load_model(FIXTURE)))
    for _ in range(2):
        lab.in_ns(lab.host, "sh", str(setup))
    rules = lab.ip(lab.host, "-4", "rule", "show").stdout.splitlines()
    ours = [r for r in rules if "lookup 1" in r]
    assert ours == [f"1000:\tfrom {ALIAS} lookup 1", f"1001:\tfrom all to {ALIAS} lookup 1"], rules
    routes = lab.ip(lab.host, "-4", "route", "show", "table", "1").stdout.splitlines()
    assert len(routes) == 3, routes
    addrs = lab.ip(lab.host, "-4", "addr", "show", "dev", "eth0").stdout
    assert addrs.count(f"inet {ALIAS}/24") == 1 and "eth0:1" in addrs, addrs
    _assert_routing(lab)
