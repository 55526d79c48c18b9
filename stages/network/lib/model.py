"""The network model: one device, its main address and gateway, and aliases with their own tables.

The model is read from a TOML table, either a standalone file or the
`[network]` section of a pipeline file. Every check happens here, so the
renderers can trust what they get. Each problem is one line naming the file
and the key, e.g. `net.toml: network.alias[0].gateway: ...`; every problem is
found in one pass (ModelError.problems), so `respin net check` lists them all.

The keys are typed options read by pipeline.options, as every stage's are: each
value's own check rides on its type (IfName, Interface, ...), and the checks
between keys (a gateway inside its subnet, one table per alias) run here on
what passed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, TypeVar

from respin.pipeline import registry, startup
from respin.pipeline.errors import ConfigError
from respin.pipeline.options import Check, Fields, Invalid, OptionsError, Problems, key_path, parse_fields
from respin.pipeline.pipelinefile import read_toml

# Keys of the [network] table that say where and how to stage, not what to render.
# A model file accepts them (a pipeline's [network] table holds both) and leaves
# them to the network stage, whose options add them to ModelOptions.
STAGING_KEYS = frozenset({"root", "backend", "rt_tables", "force", "rpm"})

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

    id: TableId
    name: TableName


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


class ModelError(OptionsError):
    """Every problem found in a model, one line each (see OptionsError)."""

    lists_all = "`respin net check` lists every one"


# Each value's own check: the TOML value (a string, or an integer where `accepts=int`)
# becomes the typed value or fails with Invalid saying why.

def _interface(text: str) -> ipaddress.IPv4Interface:
    if "/" not in text:
        raise Invalid(f"'{text}' has no prefix length (write it as ADDRESS/PREFIX)")
    try:
        iface = ipaddress.ip_interface(text)
    except ValueError as exc:
        raise Invalid(_why_not_interface(text)) from exc
    if isinstance(iface, ipaddress.IPv6Interface):
        # ifup-aliases only configures IPv4 labels; refusing beats half support.
        raise Invalid(f"'{text}' is IPv6; only IPv4 addresses are supported "
                      "(initscripts aliases are IPv4 only)")
    # /31 and /32 have no network or broadcast address to avoid.
    if iface.network.prefixlen < 31 and iface.ip in (iface.network.network_address,
                                                     iface.network.broadcast_address):
        raise Invalid(f"'{text}' is the network or broadcast address of {iface.network}")
    if iface.ip.is_unspecified or iface.ip.is_multicast or iface.ip.is_loopback:
        raise Invalid(f"'{text}' is not a usable host address")
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


def _address(text: str) -> ipaddress.IPv4Address:
    try:
        gw = ipaddress.ip_address(text)
    except ValueError as exc:
        raise Invalid(f"'{text}' is not an IP address") from exc
    if isinstance(gw, ipaddress.IPv6Address):
        raise Invalid(f"'{text}' is IPv6; only IPv4 gateways are supported")
    return gw


def _ifname(name: str) -> str:
    if not _IFNAME.fullmatch(name) or name in (".", ".."):
        raise Invalid(f"'{name}' is not a valid interface name (1-15 of A-Z a-z 0-9 _ . -)")
    return name


def _label(label: str) -> str:
    """An alias label's own form; that it sits on the model's device is checked with the device."""
    _parent, colon, suffix = label.partition(":")
    if not colon:
        raise Invalid(f"'{label}' is not an alias label; write it as DEVICE:N")
    if not _ALIAS_SUFFIX.fullmatch(suffix) or len(label) > 15:
        raise Invalid(f"'{label}': the part after ':' must be 0-9 A-Z a-z _ and the label "
                      "at most 15 characters")
    return label


def _table_id(value: int) -> int:
    if value in RESERVED_TABLE_IDS:
        raise Invalid(f"{value} is reserved (0 unspec, 252 compat, 253 default, 254 main, 255 local)")
    if not 1 <= value <= TABLE_ID_MAX:
        raise Invalid(f"{value} is outside 1..{TABLE_ID_MAX} (table ids are 32-bit)")
    return value


def _table_name(name: str) -> str:
    if name.isdigit() or (name.lower().startswith("0x") and _is_hex(name[2:])):
        raise Invalid(f"'{name}' is numeric; ip would read it as a table id")
    if name in RESERVED_TABLE_NAMES:
        raise Invalid(f"'{name}' is reserved ({', '.join(sorted(RESERVED_TABLE_NAMES))})")
    if not _TABLE_NAME.fullmatch(name):
        raise Invalid(f"'{name}' is not a valid rt_tables name "
                      "(a letter or _ then up to 63 of A-Z a-z 0-9 _ . -)")
    return name


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


def _priority(value: int) -> int:
    if not RULE_PRIORITY_MIN <= value < RULE_PRIORITY_MAX:
        raise Invalid(f"{value} is outside {RULE_PRIORITY_MIN}..{RULE_PRIORITY_MAX - 1} "
                      "(0, 32766 and 32767 hold the kernel's own rules)")
    return value


IfName = Annotated[str, Check(_ifname)]
AliasLabel = Annotated[str, Check(_label)]
Interface = Annotated[ipaddress.IPv4Interface, Check(_interface)]
Address = Annotated[ipaddress.IPv4Address, Check(_address)]
TableId = Annotated[int, Check(_table_id, accepts=int)]
TableName = Annotated[str, Check(_table_name)]
Priority = Annotated[int, Check(_priority, accepts=int)]


@dataclass(frozen=True)
class AliasOptions:
    """One `[[network.alias]]` as written."""

    device: AliasLabel
    address: Interface
    gateway: Address
    table: RouteTable
    priority: Priority | None = None  # default: 1000 + 10 x its place in the list


@dataclass(frozen=True)
class ModelOptions:
    """The model's keys as written; StageOptions (lib/options.py) adds the staging keys."""

    device: IfName
    address: Interface
    gateway: Address
    alias: tuple[AliasOptions, ...] = ()


M = TypeVar("M", bound=ModelOptions)
_MODEL_KEYS = tuple(f.name for f in fields(ModelOptions))


def _in_subnet(gw: ipaddress.IPv4Address, iface: ipaddress.IPv4Interface) -> None:
    """Refuse a gateway that `iface`'s subnet cannot reach directly."""
    if gw not in iface.network:
        raise Invalid(f"{gw} is not inside {iface.network} (the subnet of {iface})")
    if gw == iface.ip:
        raise Invalid(f"{gw} is the address itself, not a gateway")
    if iface.network.prefixlen < 31 and gw in (iface.network.network_address,
                                               iface.network.broadcast_address):
        raise Invalid(f"{gw} is the network or broadcast address of {iface.network}")


class _Seen:
    """What earlier aliases took (labels, addresses, tables, priorities) and which key took it."""

    def __init__(self) -> None:
        self.labels: dict[str, str] = {}
        self.addresses: dict[ipaddress.IPv4Address, str] = {}
        self.table_ids: dict[int, str] = {}
        self.table_names: dict[str, str] = {}
        self.priorities: dict[int, str] = {}


def _relate(fields: Fields, problems: Problems, prefix: str) -> NetworkModel | None:
    """The checks between keys, on what passed its own checks; the model if nothing failed."""
    device, address, gateway = fields.get("device"), fields.get("address"), fields.get("gateway")
    if address is not None and gateway is not None:
        problems.check(key_path(prefix, "gateway"), lambda: _in_subnet(gateway, address))
    seen = _Seen()
    if address is not None:
        seen.addresses[address.ip] = key_path(prefix, "address")
    aliases = [_alias(opts, key_path(prefix, f"alias[{index}]"), index, device, problems, seen)
               for index, opts in enumerate(fields.get("alias") or ()) if opts is not None]
    if problems.lines:
        return None
    return NetworkModel(device, address, gateway, tuple(a for a in aliases if a is not None),
                        problems.source)


def _alias(opts: AliasOptions, key: str, index: int, device: str | None, problems: Problems,
           seen: _Seen) -> Alias | None:
    """One alias fitted to the device and the aliases before it; None when it does not fit."""
    before = len(problems.lines)
    parent = opts.device.partition(":")[0]
    if device is not None and parent != device:
        problems.note(key_path(key, "device"), f"'{opts.device}' is not on {device} "
                                               f"(aliases must be {device}:N)")
    problems.claim(seen.labels, opts.device, key, key_path(key, "device"), f"'{opts.device}'")
    problems.claim(seen.addresses, opts.address.ip, key_path(key, "address"), key_path(key, "address"),
                   str(opts.address.ip))
    problems.check(key_path(key, "gateway"), lambda: _in_subnet(opts.gateway, opts.address))
    one_each = "; each alias needs its own table"
    problems.claim(seen.table_ids, opts.table.id, key, key_path(key, "table.id"),
                   f"table {opts.table.id}", one_each)
    problems.claim(seen.table_names, opts.table.name, key, key_path(key, "table.name"),
                   f"table '{opts.table.name}'", one_each)
    prio = opts.priority if opts.priority is not None else DEFAULT_PRIORITY_BASE + PRIORITY_STEP * index
    clash = next((p for p in (prio, prio + 1) if p in seen.priorities), None)
    if clash is not None:
        problems.note(key_path(key, "priority"), f"rule priority {clash} is already used by "
                                                 f"{seen.priorities[clash]} (each alias uses N and N+1)")
    for p in (prio, prio + 1):
        seen.priorities.setdefault(p, key)
    if len(problems.lines) > before:
        return None
    return Alias(opts.device, opts.address, opts.gateway, opts.table, prio)


def parse_model(table: Mapping[str, Any], source: str, prefix: str = "network") -> NetworkModel:
    """Read and check a model from a TOML table (staging keys accepted, left to the stage)."""
    return read_model(table, source, prefix, ModelOptions, STAGING_KEYS)[0]


def read_model(table: Mapping[str, Any], source: str, prefix: str, options: type[M],
               also: frozenset[str] = frozenset()) -> tuple[NetworkModel, M]:
    """Read and check a model from a TOML table: the model and the options as written.

    `source` names the file in messages; `prefix` is the key path of the table
    in that file ("network" for a `[network]` section, "" for a file holding
    the keys at the top level). `options` is ModelOptions or a subclass with
    more keys (the stage's); keys in `also` are accepted and left to another
    reader. Every problem is found before ModelError is raised with them all;
    a check between keys that needs a value found bad (a gateway's subnet)
    is left out, and an alias with a problem of its own takes no part in the
    comparisons between aliases.
    """
    problems = Problems(source)
    if not isinstance(table, Mapping):
        raise ModelError([problems.line(prefix or "network", "expected a table")])
    if isinstance(table.get("alias"), Mapping):
        table = {**table, "alias": [table["alias"]]}  # `[network.alias]` instead of `[[network.alias]]`
    fields = parse_fields(options, table, problems, prefix, {"staging keys": also} if also else None)
    model = _relate(fields, problems, prefix)
    problems.raise_any(ModelError)
    assert model is not None
    return model, options(**fields.values)


def model_of(options: ModelOptions, source: str) -> NetworkModel:
    """The model of options built in Python rather than read from a file, checked between keys."""
    problems = Problems(source)
    values = {f.name: getattr(options, f.name) for f in fields(ModelOptions)}
    model = _relate(Fields(values, {}, True), problems, "")
    problems.raise_any(ModelError)
    assert model is not None
    return model


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
    return not any(k in data for k in _MODEL_KEYS) and any(
        isinstance(v, Mapping) and k in stage_names for k, v in data.items())


def load_model(path: Path) -> NetworkModel:
    """Load and check the model in `path` (standalone file or pipeline file's `[network]`)."""
    data = read_toml(Path(path))
    table, prefix = network_table(data, str(path))
    return parse_model(table, str(path), prefix)


def load_model_options(path: Path, options: type[M]) -> tuple[NetworkModel, M]:
    """Load `path` as `load_model` does, its staging keys read and checked too, as `options`
    (a ModelOptions subclass that has them, the stage's)."""
    data = read_toml(Path(path))
    table, prefix = network_table(data, str(path))
    return read_model(table, str(path), prefix, options)
