"""`respin net check` reports every problem of a model in one pass, one line each, then exit 3, as
`respin run` and `respin check` do for a pipeline file; the commands that have one line to give
name the first and say how many more there are."""

from __future__ import annotations

from pathlib import Path

import pytest
from respin_cli import assert_one_line_error, respin

from respin.pipeline.errors import ConfigError

# Five problems of different kinds: keys and values at the top level, a value's own
# check in one alias, and checks between keys in two others. Each value's own checks
# come first, then the checks between keys on what passed them (so alias[1], whose
# table id is bad, takes no part in the comparisons).
MANY = """\
[network]
device = "eth0"
address = "192.0.2.10/33"
gateway = "192.0.2.1"
mtu = 1500

[[network.alias]]
device = "eth0:1"
address = "198.51.100.10/24"
gateway = "192.0.2.1"
table = { id = 1, name = "test" }

[[network.alias]]
device = "eth0:2"
address = "203.0.113.10/24"
gateway = "203.0.113.1"
table = { id = 254, name = "isp" }

[[network.alias]]
device = "eth0:3"
address = "198.18.0.10/24"
gateway = "198.18.0.1"
table = { id = 3, name = "test" }
"""


def test_net_check_lists_every_problem_one_line_each(tmp_path: Path) -> None:
    model = tmp_path / "many.toml"
    model.write_text(MANY)
    proc = respin("net", "check", model, check=False)
    assert proc.returncode == ConfigError.exit_code
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [f"respin: error: {model}: {line}" for line in (
        "network.mtu: unknown key (known keys: device, address, gateway, alias; "
        "staging keys: backend, force, root, rpm, rt_tables)",
        "network.address: '192.0.2.10/33': prefix length 33 is more than 32 (IPv4 prefixes are 0..32)",
        "network.alias[1].table.id: 254 is reserved (0 unspec, 252 compat, 253 default, 254 main, 255 local)",
        "network.alias[0].gateway: 192.0.2.1 is not inside 198.51.100.0/24 (the subnet of 198.51.100.10/24)",
        "network.alias[2].table.name: table 'test' is already used by network.alias[0]; "
        "each alias needs its own table",
    )]


@pytest.mark.slow
def test_net_one_line_commands_name_the_first_problem_and_count_the_rest(tmp_path: Path) -> None:
    model = tmp_path / "many.toml"
    model.write_text(MANY)
    first = f"{model}: network.mtu: unknown key"
    more = "(and 4 more problems; `respin net check` lists every one)"
    for args in (("net", "script", model), ("net", "render", model, "--root", tmp_path / "image")):
        assert_one_line_error(respin(*args, check=False), ConfigError.exit_code, first, more)
    assert not (tmp_path / "image").exists()

    # A pipeline file's problems are all listed, by `respin run` as by `respin check`.
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text('[pipeline]\nstages = ["network"]\n\n' + MANY)
    for command in ("run", "check"):
        proc = respin(command, pipeline, check=False)
        assert proc.returncode == ConfigError.exit_code
        lines = proc.stderr.splitlines()
        assert len(lines) == 5
        assert all(ln.startswith(f"respin: error: {pipeline} [network]: ") for ln in lines)
        assert lines[0].startswith(f"respin: error: {pipeline} [network]: mtu: unknown key")
