"""The model: the issue's example loads; every invalid model is refused in one line naming key and file."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from respin.pipeline.errors import ConfigError, InputError
from respin.stages.network.lib.model import load_model

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "network"

HEAD = """\
[network]
device = "eth0"
address = "192.0.2.10/24"
gateway = "192.0.2.1"
"""

ALIAS = """\
[[network.alias]]
device = "eth0:1"
address = "198.51.100.10/24"
gateway = "198.51.100.1"
table = { id = 1, name = "test" }
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad-net.toml"
    path.write_text(text)
    return path


def test_net_issue_example_loads() -> None:
    model = load_model(FIXTURES / "net.toml")
    assert model.device == "eth0"
    assert model.address == ipaddress.IPv4Interface("192.0.2.10/24")
    assert model.gateway == ipaddress.IPv4Address("192.0.2.1")
    (alias,) = model.aliases
    assert (alias.label, alias.suffix, str(alias.address), str(alias.gateway)) == (
        "eth0:1", "1", "198.51.100.10/24", "198.51.100.1")
    assert (alias.table.id, alias.table.name, alias.priority) == (1, "test", 1000)


def test_net_standalone_without_section_and_hex_table_id(tmp_path: Path) -> None:
    text = (HEAD.replace("[network]\n", "") + ALIAS.replace("network.alias", "alias")
            .replace("id = 1,", "id = 0x10,"))
    model = load_model(_write(tmp_path, text))
    assert model.aliases[0].table.id == 16


def test_net_largest_table_id_is_accepted(tmp_path: Path) -> None:
    model = load_model(_write(tmp_path, HEAD + ALIAS.replace("id = 1,", "id = 4294967295,")))
    assert model.aliases[0].table.id == 2**32 - 1


def _alias(**changes: str) -> str:
    text = ALIAS
    for old, new in changes.items():
        text = text.replace(old.replace("_", " "), new)
    return text


SECOND = """\
[[network.alias]]
device = "eth0:2"
address = "203.0.113.10/24"
gateway = "203.0.113.1"
table = { id = 2, name = "other" }
"""

# (id, file content, key named in the message, a fragment of the reason)
INVALID = [
    ("missing-device", HEAD.replace('device = "eth0"\n', ""), "network.device", "missing"),
    ("bad-device", HEAD.replace('"eth0"', '"eth 0"'), "network.device", "interface name"),
    ("long-device", HEAD.replace('"eth0"', '"a-very-long-ifname0"'), "network.device", "interface name"),
    ("address-not-string", HEAD.replace('"192.0.2.10/24"', "42"), "network.address", "string"),
    ("address-garbage", HEAD.replace('"192.0.2.10/24"', '"192.0.2.300/24"'), "network.address",
     "'192.0.2.300' is not an IP address"),
    ("address-no-prefix", HEAD.replace('"192.0.2.10/24"', '"192.0.2.10"'), "network.address", "prefix"),
    ("address-bad-prefix", HEAD.replace('"192.0.2.10/24"', '"192.0.2.10/33"'), "network.address",
     "prefix length 33 is more than 32"),
    ("address-bad-mask", HEAD.replace('"192.0.2.10/24"', '"192.0.2.10/255.0.255.0"'), "network.address",
     "'255.0.255.0' is not a prefix length (0..32) or a netmask"),
    ("address-is-network", HEAD.replace('"192.0.2.10/24"', '"192.0.2.0/24"'), "network.address",
     "network or broadcast"),
    ("gateway-outside", HEAD.replace('"192.0.2.1"', '"203.0.113.1"'), "network.gateway",
     "not inside 192.0.2.0/24"),
    ("gateway-is-address", HEAD.replace('"192.0.2.1"', '"192.0.2.10"'), "network.gateway", "itself"),
    ("gateway-broadcast", HEAD.replace('"192.0.2.1"', '"192.0.2.255"'), "network.gateway", "broadcast"),
    ("gateway-garbage", HEAD.replace('"192.0.2.1"', '"gw1"'), "network.gateway", "not an IP address"),
    ("unknown-key", HEAD + 'mtu = 1500\n', "network.mtu", "unknown key"),
    ("ipv6-address", HEAD.replace('"192.0.2.10/24"', '"2001:db8::10/64"'), "network.address", "IPv6"),
    ("alias-gateway-outside", HEAD + _alias(**{'"198.51.100.1"': '"192.0.2.1"'}),
     "network.alias[0].gateway", "not inside 198.51.100.0/24"),
    ("alias-ipv6", HEAD + _alias(**{'"198.51.100.10/24"': '"2001:db8::10/64"'}),
     "network.alias[0].address", "IPv6"),
    ("alias-ipv6-gateway", HEAD + _alias(**{'"198.51.100.1"': '"2001:db8::1"'}),
     "network.alias[0].gateway", "IPv6"),
    ("alias-no-colon", HEAD + _alias(**{'"eth0:1"': '"eth1"'}), "network.alias[0].device",
     "not an alias label"),
    ("alias-other-parent", HEAD + _alias(**{'"eth0:1"': '"eth1:1"'}), "network.alias[0].device",
     "not on eth0"),
    ("alias-bad-suffix", HEAD + _alias(**{'"eth0:1"': '"eth0:a-b"'}), "network.alias[0].device",
     "after ':'"),
    ("alias-same-address", HEAD + _alias(**{'"198.51.100.10/24"': '"192.0.2.10/24"',
                                            '"198.51.100.1"': '"192.0.2.1"'}),
     "network.alias[0].address", "already used by network.address"),
    ("alias-unknown-key", HEAD + ALIAS + 'metric = 5\n', "network.alias[0].metric", "unknown key"),
    ("alias-missing-table", HEAD + ALIAS.replace('table = { id = 1, name = "test" }\n', ""),
     "network.alias[0].table", "missing"),
    ("table-not-a-table", HEAD + ALIAS.replace('{ id = 1, name = "test" }', '"test"'),
     "network.alias[0].table", "expected a table"),
    ("table-id-0", HEAD + ALIAS.replace("id = 1,", "id = 0,"), "network.alias[0].table.id", "reserved"),
    ("table-id-252", HEAD + ALIAS.replace("id = 1,", "id = 252,"), "network.alias[0].table.id", "reserved"),
    ("table-id-253", HEAD + ALIAS.replace("id = 1,", "id = 253,"), "network.alias[0].table.id", "reserved"),
    ("table-id-254", HEAD + ALIAS.replace("id = 1,", "id = 254,"), "network.alias[0].table.id", "reserved"),
    ("table-id-255", HEAD + ALIAS.replace("id = 1,", "id = 255,"), "network.alias[0].table.id", "reserved"),
    ("table-id-negative", HEAD + ALIAS.replace("id = 1,", "id = -1,"), "network.alias[0].table.id",
     "32-bit"),
    ("table-id-too-big", HEAD + ALIAS.replace("id = 1,", "id = 4294967296,"), "network.alias[0].table.id",
     "32-bit"),
    ("table-id-string", HEAD + ALIAS.replace("id = 1,", 'id = "1",'), "network.alias[0].table.id",
     "integer"),
    ("table-name-numeric", HEAD + ALIAS.replace('name = "test"', 'name = "100"'),
     "network.alias[0].table.name", "numeric"),
    ("table-name-hex", HEAD + ALIAS.replace('name = "test"', 'name = "0x1f"'),
     "network.alias[0].table.name", "numeric"),
    ("table-name-main", HEAD + ALIAS.replace('name = "test"', 'name = "main"'),
     "network.alias[0].table.name", "reserved"),
    ("table-name-local", HEAD + ALIAS.replace('name = "test"', 'name = "local"'),
     "network.alias[0].table.name", "reserved"),
    ("table-name-default", HEAD + ALIAS.replace('name = "test"', 'name = "default"'),
     "network.alias[0].table.name", "reserved"),
    ("table-name-unspec", HEAD + ALIAS.replace('name = "test"', 'name = "unspec"'),
     "network.alias[0].table.name", "reserved"),
    ("table-name-space", HEAD + ALIAS.replace('name = "test"', 'name = "my table"'),
     "network.alias[0].table.name", "rt_tables name"),
    ("table-name-hash", HEAD + ALIAS.replace('name = "test"', 'name = "t#1"'),
     "network.alias[0].table.name", "rt_tables name"),
    ("table-name-empty", HEAD + ALIAS.replace('name = "test"', 'name = ""'),
     "network.alias[0].table.name", "rt_tables name"),
    ("table-unknown-key", HEAD + ALIAS.replace('name = "test" }', 'name = "test", kind = 1 }'),
     "network.alias[0].table.kind", "unknown key"),
    ("shared-table-id", HEAD + ALIAS + SECOND.replace("id = 2,", "id = 1,"),
     "network.alias[1].table.id", "already used by network.alias[0]"),
    ("shared-table-name", HEAD + ALIAS + SECOND.replace('name = "other"', 'name = "test"'),
     "network.alias[1].table.name", "already used by network.alias[0]"),
    ("same-label", HEAD + ALIAS + SECOND.replace('"eth0:2"', '"eth0:1"'),
     "network.alias[1].device", "already used"),
    ("priority-clash", HEAD + ALIAS.replace("table =", "priority = 100\ntable =")
     + SECOND.replace("table =", "priority = 101\ntable ="),
     "network.alias[1].priority", "already used"),
    ("priority-main", HEAD + ALIAS.replace("table =", "priority = 32766\ntable ="),
     "network.alias[0].priority", "outside"),
    ("priority-zero", HEAD + ALIAS.replace("table =", "priority = 0\ntable ="),
     "network.alias[0].priority", "outside"),
    ("alias-not-tables", HEAD + 'alias = ["eth0:1"]\n', "network.alias[0]", "expected a table"),
    ("network-not-table", 'network = "eth0"\n', "network", "expected a [network] table"),
]


@pytest.mark.parametrize(("text", "key", "reason"), [pytest.param(t, k, r, id=i) for i, t, k, r in INVALID])
def test_net_invalid_model_is_refused_naming_key_and_file(tmp_path: Path, text: str, key: str,
                                                          reason: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_model(path)
    message = str(info.value)
    # One problem makes one line, not a cascade of checks that needed the bad value.
    assert len(getattr(info.value, "problems", [message])) == 1, info.value
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}: "), message
    assert reason in message, message
    assert info.value.exit_code == ConfigError.exit_code


def test_net_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[network\n")
    with pytest.raises(ConfigError, match=f"^{path}: not valid TOML"):
        load_model(path)


def test_net_missing_file_is_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_model(tmp_path / "absent.toml")
