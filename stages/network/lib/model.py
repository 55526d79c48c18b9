"""The network model: one device, its main address and gateway, and aliases with their own tables.

The model is read from a TOML table, either a standalone file or the
`[network]` section of a pipeline file. Every check happens here, so the
renderers can trust what they get. Each problem is one line naming the file
and the key, e.g. `net.toml: network.alias[0].gateway: ...`; every problem is
found in one pass (ModelError.problems), so `respin net check` lists them all.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from respin.pipeline import registry, startup
from respin.pipeline.config import read_toml
from respin.pipeline.errors import ConfigError

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


class ModelError(ConfigError):
    """Every problem found in a model, one line each; the message is the first (and how
    many more), so a caller that has one line to give still names one problem exactly."""

    def __init__(self, problems: Sequence[str]) -> None:
        more = len(problems) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''}; `respin net check` " \
               "lists every one)" if more else ""
        super().__init__(f"{problems[0]}{tail}")
        self.problems = tuple(problems)


_T = TypeVar("_T")


class _Where:
    """Builds one-line errors naming the file and the key path, and collects them."""

    def __init__(self, source: str, prefix: str) -> None:
        self.source = source
        self.prefix = prefix
        self.problems: list[str] = []

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {message}")

    def problem(self, key: str, message: str) -> None:
        """Note a problem and go on checking the rest."""
        self.problems.append(self.error(key, message).message)

    def attempt(self, check: Callable[[], _T]) -> _T | None:
        """The value `check` builds, or None after noting why it could not."""
        try:
            return check()
        except ConfigError as exc:
            self.problems.append(exc.message)
            return None

    def field(self, table: Mapping[str, Any], name: str, key: str,
              check: Callable[[Any, _Where, str], _T]) -> _T | None:
        """`table[name]` (key path `key`) as `check` builds it, or None after noting why not."""
        return self.attempt(lambda: check(_require(table, name, self, key), self, key))

    def claim(self, taken: dict[Any, str], value: Any, owner: str, key: str, what: str,
              why: str = "") -> None:
        """Note a problem if an earlier key took `value`; else `owner` takes it."""
        if value in taken:
            self.problem(key, f"{what} is already used by {taken[value]}{why}")
        else:
            taken[value] = owner


def _check_keys(table: Mapping[str, Any], known: Sequence[str], where: _Where, key: str,
                extra: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Normalise dashes to underscores; note each unknown key and leave it out."""
    out: dict[str, Any] = {}
    for raw, value in table.items():
        name = str(raw).replace("-", "_")
        if name not in known and name not in extra:
            label = f"{key}.{raw}" if key else str(raw)
            staging = f"; staging keys: {', '.join(sorted(extra))}" if extra else ""
            where.problem(label, f"unknown key (known keys: {', '.join(known)}{staging})")
            continue
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
        raise where.error(key, _why_not_interface(text)) from exc
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


def _why_not_interface(text: str) -> str:
    """Which half of ADDRESS/PREFIX is wrong, in the model's words."""
    host, _, length = text.partition("/")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"'{text}': '{host}' is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        return f"'{text}' is IPv6; only IPv4 addresses are supported (initscripts aliases are IPv4 only)"
    if length.isdigit():
        return f"'{text}': prefix length {int(length)} is more than 32 (IPv4 prefixes are 0..32)"
    return f"'{text}': '{length}' is not a prefix length (0..32) or a netmask"


def _gateway(value: Any, iface: ipaddress.IPv4Interface | None, where: _Where,
             key: str) -> ipaddress.IPv4Address:
    """The gateway; checked against the subnet of `iface` unless that address was bad."""
    text = _string(value, where, key)
    try:
        gw = ipaddress.ip_address(text)
    except ValueError as exc:
        raise where.error(key, f"'{text}' is not an IP address") from exc
    if isinstance(gw, ipaddress.IPv6Address):
        raise where.error(key, f"'{text}' is IPv6; only IPv4 gateways are supported")
    if iface is None:
        return gw
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


def _table(value: Any, where: _Where, key: str) -> tuple[int | None, str | None]:
    """A `table = { id, name }`: each half checked on its own (None: a problem was noted),
    so a bad id still lets the name be compared with the other aliases'."""
    if not isinstance(value, Mapping):
        where.problem(key, f"expected a table like {{ id = 1, name = \"test\" }}, got {value!r}")
        return None, None
    table = _check_keys(value, TABLE_KEYS, where, key)
    return (where.field(table, "id", f"{key}.id", _table_id),
            where.field(table, "name", f"{key}.name", _table_name))


def _table_id(value: Any, where: _Where, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(key, f"expected an integer, got {value!r}")
    if value in RESERVED_TABLE_IDS:
        raise where.error(key, f"{value} is reserved (0 unspec, 252 compat, 253 default, "
                               "254 main, 255 local)")
    if not 1 <= value <= TABLE_ID_MAX:
        raise where.error(key, f"{value} is outside 1..{TABLE_ID_MAX} (table ids are 32-bit)")
    return value


def _table_name(value: Any, where: _Where, key: str) -> str:
    name = _string(value, where, key)
    if name.isdigit() or (name.lower().startswith("0x") and _is_hex(name[2:])):
        raise where.error(key, f"'{name}' is numeric; ip would read it as a table id")
    if name in RESERVED_TABLE_NAMES:
        raise where.error(key, f"'{name}' is reserved ({', '.join(sorted(RESERVED_TABLE_NAMES))})")
    if not _TABLE_NAME.fullmatch(name):
        raise where.error(key, f"'{name}' is not a valid rt_tables name "
                               "(a letter or _ then up to 63 of A-Z a-z 0-9 _ . -)")
    return name


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
    Every problem is found before ModelError is raised with them all; a check
    that needs a value found bad (a gateway's subnet) is left out.
    """
    where = _Where(source, prefix)
    if not isinstance(table, Mapping):
        raise where.error(prefix or "network", "expected a table")
    top = _check_keys(table, MODEL_KEYS, where, prefix, extra=STAGING_KEYS)
    device = where.field(top, "device", where.key("device"), _ifname)
    address = where.field(top, "address", where.key("address"), _interface)
    gateway = where.field(top, "gateway", where.key("gateway"), lambda v, w, k: _gateway(v, address, w, k))

    raw_aliases = top.get("alias", [])
    if isinstance(raw_aliases, Mapping):
        raw_aliases = [raw_aliases]  # `[network.alias]` instead of `[[network.alias]]`
    if not isinstance(raw_aliases, list):
        where.problem(where.key("alias"), f"expected [[{where.key('alias')}]] tables, got {raw_aliases!r}")
        raw_aliases = []

    seen = _Seen(where, address)
    aliases = [_alias(raw, where.key(f"alias[{index}]"), index, device, where, seen)
               for index, raw in enumerate(raw_aliases)]

    if where.problems:
        raise ModelError(where.problems)
    assert device is not None and address is not None and gateway is not None
    return NetworkModel(device, address, gateway, tuple(a for a in aliases if a is not None), source)


class _Seen:
    """What earlier aliases took (labels, addresses, tables, priorities) and which key took it."""

    def __init__(self, where: _Where, address: ipaddress.IPv4Interface | None) -> None:
        self.labels: dict[str, str] = {}
        self.addresses: dict[ipaddress.IPv4Address, str] = {}
        if address is not None:
            self.addresses[address.ip] = where.key("address")
        self.table_ids: dict[int, str] = {}
        self.table_names: dict[str, str] = {}
        self.priorities: dict[int, str] = {}


def _label(value: Any, device: str | None, where: _Where, key: str) -> str:
    label = _string(value, where, key)
    parent, colon, suffix = label.partition(":")
    if not colon:
        raise where.error(key, f"'{label}' is not an alias label; write it as {device or 'DEVICE'}:N")
    if device is not None and parent != device:
        raise where.error(key, f"'{label}' is not on {device} (aliases must be {device}:N)")
    if not _ALIAS_SUFFIX.fullmatch(suffix) or len(label) > 15:
        raise where.error(key, f"'{label}': the part after ':' must be "
                               "0-9 A-Z a-z _ and the label at most 15 characters")
    return label


def _alias(raw: Any, key: str, index: int, device: str | None, where: _Where, seen: _Seen) -> Alias | None:
    """One `[[alias]]` entry; None when it has a problem (noted in `where`)."""
    if not isinstance(raw, Mapping):
        where.problem(key, f"expected a table, got {raw!r}")
        return None
    before = len(where.problems)
    entry = _check_keys(raw, ALIAS_KEYS, where, key)

    label = where.field(entry, "device", f"{key}.device", lambda v, w, k: _label(v, device, w, k))
    if label is not None:
        where.claim(seen.labels, label, key, f"{key}.device", f"'{label}'")
    address = where.field(entry, "address", f"{key}.address", _interface)
    if address is not None:
        where.claim(seen.addresses, address.ip, f"{key}.address", f"{key}.address", str(address.ip))
    gateway = where.field(entry, "gateway", f"{key}.gateway", lambda v, w, k: _gateway(v, address, w, k))

    table_id, table_name = where.field(entry, "table", f"{key}.table", _table) or (None, None)
    one_each = "; each alias needs its own table"
    if table_id is not None:
        where.claim(seen.table_ids, table_id, key, f"{key}.table.id", f"table {table_id}", one_each)
    if table_name is not None:
        where.claim(seen.table_names, table_name, key, f"{key}.table.name", f"table '{table_name}'", one_each)

    if "priority" in entry:
        prio = where.attempt(lambda: _priority(entry["priority"], where, f"{key}.priority"))
    else:
        prio = DEFAULT_PRIORITY_BASE + PRIORITY_STEP * index
    if prio is not None:
        clash = next((p for p in (prio, prio + 1) if p in seen.priorities), None)
        if clash is not None:
            where.problem(f"{key}.priority", f"rule priority {clash} is already used by "
                                             f"{seen.priorities[clash]} (each alias uses N and N+1)")
        for p in (prio, prio + 1):
            seen.priorities.setdefault(p, key)

    if len(where.problems) > before:
        return None
    assert label is not None and address is not None and gateway is not None and table_id is not None \
        and table_name is not None and prio is not None
    return Alias(label, address, gateway, RouteTable(table_id, table_name), prio)


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
    if _is_pipeline_file(data):
        raise ConfigError(f"{source}: is a pipeline file with no [network] table, not a network model")
    return data, ""


def _is_pipeline_file(data: Mapping[str, Any]) -> bool:
    """A [pipeline] table, or stage tables ([fetch], [config], ...) and no model key."""
    if isinstance(data.get("pipeline"), Mapping):
        return True
    stage_names = startup.own_entry_points(registry.STAGES_GROUP)
    return not any(k in data for k in MODEL_KEYS) and any(
        isinstance(v, Mapping) and k in stage_names for k, v in data.items())


def load_model(path: Path) -> NetworkModel:
    """Load and check the model in `path` (standalone file or pipeline file's `[network]`)."""
    data = read_toml(Path(path))
    table, prefix = network_table(data, str(path))
    return parse_model(table, str(path), prefix)
