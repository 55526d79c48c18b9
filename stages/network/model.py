"""The network model: one device, its main address and gateway, and aliases with their own tables.

The model is read from a TOML table, either a standalone file or the
`[network]` section of a pipeline file. Every check happens here, so the
renderers can trust what they get. Errors are one line naming the file and
the key, e.g. `net.toml: network.alias[0].gateway: ...`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.config import read_toml
from pipeline.errors import ConfigError

# Keys of the [network] table that say where and how to stage, not what to render.
# The model accepts them (a pipeline's [network] table holds both) and leaves them
# to stages.network.stage.
STAGING_KEYS = frozenset({"root", "backend", "rt_tables", "force", "rpm"})

MODEL_KEYS = ("device", "address", "gateway", "alias")
ALIAS_KEYS = ("device", "address", "gateway", "table", "priority")
TABLE_KEYS = ("id", "name")

# Table ids the kernel or iproute2 give a meaning: 0 unspec, 252 compat,
# 253 default, 254 main, 255 local.
RESERVED_TABLE_IDS = frozenset({0, 252, 253, 254, 255})
# Names iproute2 resolves itself ("all" is a keyword of `ip route show table`).
RESERVED_TABLE_NAMES = frozenset({"unspec", "compat", "default", "main", "local", "all"})
TABLE_ID_MAX = 2**32 - 1

# Priorities 0, 32766 and 32767 hold the kernel's local, main and default rules.
RULE_PRIORITY_MIN = 1
RULE_PRIORITY_MAX = 32765
DEFAULT_PRIORITY_BASE = 1000
PRIORITY_STEP = 10

# A table name is one rt_tables word: it must not start with a digit (iproute2
# would read a number) and must not hold whitespace or '#'.
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
# Kernel interface names: at most 15 bytes; we keep to a portable character set.
_IFNAME = re.compile(r"[A-Za-z0-9_.-]{1,15}")
# ifup-aliases accepts only `[0-9A-Za-z_]*` after the colon.
_ALIAS_SUFFIX = re.compile(r"[0-9A-Za-z_]+")


@dataclass(frozen=True)
class RouteTable:
    """A routing table: the number the kernel uses and the name rt_tables gives it."""

    id: int
    name: str


@dataclass(frozen=True)
class Alias:
    """An alias address (`eth0:1`) whose traffic leaves through its own gateway and table."""

    label: str
    address: ipaddress.IPv4Interface
    gateway: ipaddress.IPv4Address
    table: RouteTable
    priority: int  # of the `from` rule; the `to` rule uses priority + 1

    @property
    def suffix(self) -> str:
        """What follows the colon in the label ("1" for "eth0:1")."""
        return self.label.split(":", 1)[1]


@dataclass(frozen=True)
class NetworkModel:
    """A device with a main address and gateway, and its aliases."""

    device: str
    address: ipaddress.IPv4Interface
    gateway: ipaddress.IPv4Address
    aliases: tuple[Alias, ...]
    source: str = "<model>"  # the file it came from, for messages

    def interfaces(self) -> tuple[ipaddress.IPv4Interface, ...]:
        """Every address on the device, main first."""
        return (self.address, *(a.address for a in self.aliases))

    def connected_routes(self) -> tuple[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address], ...]:
        """The main table's non-default routes: each subnet on the device with its source address.

        The kernel adds these to main when the addresses are set; an alias
        table needs its own copies. A subnet shared by two addresses is
        listed once, with the first address.
        """
        seen: dict[ipaddress.IPv4Network, ipaddress.IPv4Address] = {}
        for iface in self.interfaces():
            seen.setdefault(iface.network, iface.ip)
        return tuple(seen.items())

    def table_routes(self, alias: Alias) -> tuple[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address], ...]:
        """The connected routes as copied into `alias`'s table (the alias's own subnet uses its address)."""
        return tuple((net, alias.address.ip if net == alias.address.network else src)
                     for net, src in self.connected_routes())

    def to_json(self) -> dict[str, Any]:
        """The model as plain data, stable for fingerprints."""
        return {
            "device": self.device,
            "address": str(self.address),
            "gateway": str(self.gateway),
            "alias": [
                {"device": a.label, "address": str(a.address), "gateway": str(a.gateway),
                 "table": {"id": a.table.id, "name": a.table.name}, "priority": a.priority}
                for a in self.aliases
            ],
        }


class _Where:
    """Builds one-line errors naming the file and the key path."""

    def __init__(self, source: str, prefix: str) -> None:
        self.source = source
        self.prefix = prefix

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {message}")


def _check_keys(table: Mapping[str, Any], known: Sequence[str], where: _Where, key: str,
                extra: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Normalise dashes to underscores and reject unknown keys, naming the first one."""
    out: dict[str, Any] = {}
    for raw, value in table.items():
        name = str(raw).replace("-", "_")
        if name not in known and name not in extra:
            label = f"{key}.{raw}" if key else str(raw)
            staging = f"; staging keys: {', '.join(sorted(extra))}" if extra else ""
            raise where.error(label, f"unknown key (known keys: {', '.join(known)}{staging})")
        out[name] = value
    return out


def _require(table: Mapping[str, Any], name: str, where: _Where, key: str) -> Any:
    if name not in table:
        raise where.error(key, "missing required key")
    return table[name]


def _string(value: Any, where: _Where, key: str) -> str:
    if not isinstance(value, str):
        raise where.error(key, f"expected a string, got {value!r}")
    return value


def _interface(value: Any, where: _Where, key: str) -> ipaddress.IPv4Interface:
    text = _string(value, where, key)
    if "/" not in text:
        raise where.error(key, f"'{text}' has no prefix length (write it as ADDRESS/PREFIX)")
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError as exc:
        raise where.error(key, f"'{text}' is not an address with a prefix: {exc}") from exc
    if isinstance(iface, ipaddress.IPv6Interface):
        # ifup-aliases only configures IPv4 labels; refusing beats half support.
        raise where.error(key, f"'{text}' is IPv6; only IPv4 addresses are supported "
                               "(initscripts aliases are IPv4 only)")
    # /31 and /32 have no network or broadcast address to avoid.
    if iface.network.prefixlen < 31 and iface.ip in (iface.network.network_address,
                                                     iface.network.broadcast_address):
        raise where.error(key, f"'{text}' is the network or broadcast address of {iface.network}")
    if iface.ip.is_unspecified or iface.ip.is_multicast or iface.ip.is_loopback:
        raise where.error(key, f"'{text}' is not a usable host address")
    return iface


def _gateway(value: Any, iface: ipaddress.IPv4Interface, where: _Where, key: str) -> ipaddress.IPv4Address:
    text = _string(value, where, key)
    try:
        gw = ipaddress.ip_address(text)
    except ValueError as exc:
        raise where.error(key, f"'{text}' is not an IP address") from exc
    if isinstance(gw, ipaddress.IPv6Address):
        raise where.error(key, f"'{text}' is IPv6; only IPv4 gateways are supported")
    if gw not in iface.network:
        raise where.error(key, f"{gw} is not inside {iface.network} (the subnet of {iface})")
    if gw == iface.ip:
        raise where.error(key, f"{gw} is the address itself, not a gateway")
    if iface.network.prefixlen < 31 and gw in (iface.network.network_address,
                                               iface.network.broadcast_address):
        raise where.error(key, f"{gw} is the network or broadcast address of {iface.network}")
    return gw


def _ifname(value: Any, where: _Where, key: str) -> str:
    name = _string(value, where, key)
    if not _IFNAME.fullmatch(name) or name in (".", ".."):
        raise where.error(key, f"'{name}' is not a valid interface name "
                               "(1-15 of A-Z a-z 0-9 _ . -)")
    return name


def _table(value: Any, where: _Where, key: str) -> RouteTable:
    if not isinstance(value, Mapping):
        raise where.error(key, f"expected a table like {{ id = 1, name = \"test\" }}, got {value!r}")
    table = _check_keys(value, TABLE_KEYS, where, key)
    raw_id = _require(table, "id", where, f"{key}.id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, int):
        raise where.error(f"{key}.id", f"expected an integer, got {raw_id!r}")
    if raw_id in RESERVED_TABLE_IDS:
        raise where.error(f"{key}.id", f"{raw_id} is reserved (0 unspec, 252 compat, 253 default, "
                                       "254 main, 255 local)")
    if not 1 <= raw_id <= TABLE_ID_MAX:
        raise where.error(f"{key}.id", f"{raw_id} is outside 1..{TABLE_ID_MAX} (table ids are 32-bit)")
    name = _string(_require(table, "name", where, f"{key}.name"), where, f"{key}.name")
    if name.isdigit() or (name.lower().startswith("0x") and _is_hex(name[2:])):
        raise where.error(f"{key}.name", f"'{name}' is numeric; ip would read it as a table id")
    if name in RESERVED_TABLE_NAMES:
        raise where.error(f"{key}.name", f"'{name}' is reserved "
                                         f"({', '.join(sorted(RESERVED_TABLE_NAMES))})")
    if not _TABLE_NAME.fullmatch(name):
        raise where.error(f"{key}.name", f"'{name}' is not a valid rt_tables name "
                                         "(a letter or _ then up to 63 of A-Z a-z 0-9 _ . -)")
    return RouteTable(raw_id, name)


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


def _priority(value: Any, where: _Where, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(key, f"expected an integer, got {value!r}")
    if not RULE_PRIORITY_MIN <= value < RULE_PRIORITY_MAX:
        raise where.error(key, f"{value} is outside {RULE_PRIORITY_MIN}..{RULE_PRIORITY_MAX - 1} "
                               "(0, 32766 and 32767 hold the kernel's own rules)")
    return value


def parse_model(table: Mapping[str, Any], source: str, prefix: str = "network") -> NetworkModel:
    """Build and check a model from a TOML table.

    `source` names the file in messages; `prefix` is the key path of the
    table in that file ("network" for a `[network]` section, "" for a file
    holding the keys at the top level). Staging keys are accepted and ignored.
    """
    where = _Where(source, prefix)
    if not isinstance(table, Mapping):
        raise where.error(prefix or "network", "expected a table")
    top = _check_keys(table, MODEL_KEYS, where, prefix, extra=STAGING_KEYS)
    device = _ifname(_require(top, "device", where, where.key("device")), where, where.key("device"))
    address = _interface(_require(top, "address", where, where.key("address")), where,
                         where.key("address"))
    gateway = _gateway(_require(top, "gateway", where, where.key("gateway")), address, where,
                       where.key("gateway"))

    raw_aliases = top.get("alias", [])
    if isinstance(raw_aliases, Mapping):
        raw_aliases = [raw_aliases]  # `[network.alias]` instead of `[[network.alias]]`
    if not isinstance(raw_aliases, list):
        raise where.error(where.key("alias"), f"expected [[{where.key('alias')}]] tables, "
                                              f"got {raw_aliases!r}")

    aliases: list[Alias] = []
    labels: dict[str, str] = {}
    addresses: dict[ipaddress.IPv4Address, str] = {address.ip: where.key("address")}
    table_ids: dict[int, str] = {}
    table_names: dict[str, str] = {}
    priorities: dict[int, str] = {}
    for index, raw in enumerate(raw_aliases):
        key = where.key(f"alias[{index}]")
        if not isinstance(raw, Mapping):
            raise where.error(key, f"expected a table, got {raw!r}")
        entry = _check_keys(raw, ALIAS_KEYS, where, key)

        label = _string(_require(entry, "device", where, f"{key}.device"), where, f"{key}.device")
        parent, colon, suffix = label.partition(":")
        if not colon:
            raise where.error(f"{key}.device", f"'{label}' is not an alias label; "
                                               f"write it as {device}:N")
        if parent != device:
            raise where.error(f"{key}.device", f"'{label}' is not on {device} "
                                               f"(aliases must be {device}:N)")
        if not _ALIAS_SUFFIX.fullmatch(suffix) or len(label) > 15:
            raise where.error(f"{key}.device", f"'{label}': the part after ':' must be "
                                               "0-9 A-Z a-z _ and the label at most 15 characters")
        if label in labels:
            raise where.error(f"{key}.device", f"'{label}' is already used by {labels[label]}")
        labels[label] = key

        alias_addr = _interface(_require(entry, "address", where, f"{key}.address"), where,
                                f"{key}.address")
        if alias_addr.ip in addresses:
            raise where.error(f"{key}.address", f"{alias_addr.ip} is already used by "
                                                f"{addresses[alias_addr.ip]}")
        addresses[alias_addr.ip] = f"{key}.address"
        alias_gw = _gateway(_require(entry, "gateway", where, f"{key}.gateway"), alias_addr, where,
                            f"{key}.gateway")

        rt = _table(_require(entry, "table", where, f"{key}.table"), where, f"{key}.table")
        if rt.id in table_ids:
            raise where.error(f"{key}.table.id", f"table {rt.id} is already used by {table_ids[rt.id]}; "
                                                 "each alias needs its own table")
        if rt.name in table_names:
            raise where.error(f"{key}.table.name", f"table '{rt.name}' is already used by "
                                                   f"{table_names[rt.name]}; each alias needs its own table")
        table_ids[rt.id] = key
        table_names[rt.name] = key

        if "priority" in entry:
            prio = _priority(entry["priority"], where, f"{key}.priority")
        else:
            prio = DEFAULT_PRIORITY_BASE + PRIORITY_STEP * index
        for p in (prio, prio + 1):
            if p in priorities:
                raise where.error(f"{key}.priority", f"rule priority {p} is already used by "
                                                     f"{priorities[p]} (each alias uses N and N+1)")
        priorities[prio] = priorities[prio + 1] = key

        aliases.append(Alias(label, alias_addr, alias_gw, rt, prio))

    return NetworkModel(device, address, gateway, tuple(aliases), source)


def network_table(data: Mapping[str, Any], source: str) -> tuple[Mapping[str, Any], str]:
    """The model table of a parsed file and its key prefix.

    A file with a `[network]` table (a pipeline file, or a standalone file
    written like the issue's example) uses that; otherwise the whole file is
    the model.
    """
    if "network" in data:
        section = data["network"]
        if not isinstance(section, Mapping):
            raise ConfigError(f"{source}: network: expected a [network] table, got {section!r}")
        return section, "network"
    return data, ""


def load_model(path: Path) -> NetworkModel:
    """Load and check the model in `path` (standalone file or pipeline file's `[network]`)."""
    data = read_toml(Path(path))
    table, prefix = network_table(data, str(path))
    return parse_model(table, str(path), prefix)
