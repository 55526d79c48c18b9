"""The `network` stage: options from a pipeline table, artifacts, and a second run that does nothing."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from respin.pipeline import registry
from respin.pipeline.errors import ConfigError
from respin.pipeline.pipelinefile import load
from respin.pipeline.runner import Runner
from respin.pipeline.stage import Context
from respin.stages.network.lib.model import STAGING_KEYS, AliasOptions, ModelOptions, RouteTable
from respin.stages.network.lib.root import STATE_PATH
from respin.stages.network.network import NetworkStage

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "network"
WHERE = "pipe.toml [network]"


def _table(**extra: Any) -> dict[str, Any]:
    table = dict(tomllib.loads((FIXTURES / "net.toml").read_text())["network"])
    table.update(extra)
    return table


def _context(tmp_path: Path) -> Context:
    source = tmp_path / "pipe.toml"
    source.write_text("")
    stagedir = tmp_path / "work" / "stages" / "network"
    stagedir.mkdir(parents=True)
    return Context(workdir=tmp_path / "work", source=source, settings={"source_date_epoch": 1700000000},
                   stagedir=stagedir, log=logging.getLogger("test"))


def test_net_stage_from_table_builds_the_model() -> None:
    stage = NetworkStage.from_table(_table(backend="networkd"), WHERE)
    assert isinstance(stage, NetworkStage)
    assert stage.model.aliases[0].table.name == "test"
    data = stage.options_json()
    assert data["backend"] == "networkd" and data["alias"][0]["priority"] == 1000


def test_net_stage_options_are_the_models_keys_and_the_staging_keys() -> None:
    """A model file accepts the staging keys because the stage reads them: the two lists agree."""
    names = {f.name for f in dataclasses.fields(NetworkStage.Options)}
    assert names - {f.name for f in dataclasses.fields(ModelOptions)} == STAGING_KEYS


def test_net_stage_built_in_python_is_checked_between_keys() -> None:
    """Options a script builds get the model's checks between keys too (a gateway outside
    its alias's subnet), as a table read from a file does."""
    def ip(text: str) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(text)

    alias = AliasOptions("eth0:1", ip("198.51.100.10/24"), ipaddress.IPv4Address("192.0.2.1"),
                         RouteTable(1, "test"))
    opts = NetworkStage.Options("eth0", ip("192.0.2.10/24"), ipaddress.IPv4Address("192.0.2.1"), (alias,))
    with pytest.raises(ConfigError, match=r"^script: alias\[0\].gateway: 192.0.2.1 is not inside"):
        NetworkStage(opts, "script")
    good = dataclasses.replace(alias, gateway=ipaddress.IPv4Address("198.51.100.1"))
    assert NetworkStage(dataclasses.replace(opts, alias=(good,)), "script").model.aliases[0].priority == 1000


@pytest.mark.parametrize(("extra", "fragment"), [
    ({"backend": "ifupdown"}, f"{WHERE}: backend: expected 'initscripts' or"),
    ({"colour": "red"}, f"{WHERE}: colour: unknown key"),
    ({"rpm": {"name": "x"}}, f"{WHERE}: rpm.version: missing required key"),
    ({"rpm": {"name": "x", "version": "1", "arch": "x86_64"}}, f"{WHERE}: rpm.arch: unknown key"),
    ({"rpm": {"name": "x", "version": "1"}, "rt_tables": "merge"}, "'merge' cannot go into an RPM"),
    ({"force": "yes"}, f"{WHERE}: force: expected true or false"),
])
def test_net_stage_bad_options_are_one_line_config_errors(extra: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        NetworkStage.from_table(_table(**extra), WHERE)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_net_stage_model_errors_name_the_nested_key() -> None:
    table = _table()
    table["alias"] = [dict(table["alias"][0], table={"id": 254, "name": "x"})]
    with pytest.raises(ConfigError, match=r"^pipe.toml \[network\]: alias\[0\].table.id: 254 is reserved"):
        NetworkStage.from_table(table, WHERE)


def test_net_stage_run_makes_netfiles_root_and_rpm(tmp_path: Path) -> None:
    if shutil.which("rpmbuild") is None:
        pytest.skip("rpmbuild is not installed")
    (tmp_path / "image").mkdir()
    stage = NetworkStage.from_table(_table(root="image", rpm={"name": "net-conf", "version": "3"}), WHERE)
    artifacts = stage.run(_context(tmp_path))
    kinds = {a.kind: a for a in artifacts}
    assert sorted(kinds) == ["netfiles", "netstate", "network-rpm", "staged"]
    netfiles = kinds["netfiles"]
    listed = sorted(str(p.relative_to(netfiles.path)) for p in netfiles.path.rglob("*") if p.is_file())
    assert listed == netfiles.meta["files"]
    assert "etc/sysconfig/network-scripts/route-eth0:1" in listed
    for rel in listed:
        assert (tmp_path / "image" / rel).read_bytes() == (netfiles.path / rel).read_bytes()
    assert sorted(a.path for a in artifacts if a.kind == "staged") == [tmp_path / "image" / rel
                                                                       for rel in listed]
    assert kinds["netstate"].path == tmp_path / "image" / STATE_PATH
    assert kinds["network-rpm"].path.name == "net-conf-3-1.noarch.rpm"


def test_net_pipeline_runs_network_stage_then_does_nothing(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Until pyproject registers the stage under "respin.stages", hand the registry this class.
    original = registry.stage
    monkeypatch.setattr(registry, "stage",
                        lambda name: NetworkStage if name == "network" else original(name))
    shutil.copy(FIXTURES / "pipeline.toml", tmp_path / "pipeline.toml")
    (tmp_path / "image").mkdir()
    pipeline = load(tmp_path / "pipeline.toml", {"workdir": str(tmp_path / "work")})
    first = Runner(pipeline).run()
    assert first.ran == ["network"]
    assert (tmp_path / "image" / "etc/iproute2/rt_tables.d/test.conf").is_file()
    second = Runner(load(tmp_path / "pipeline.toml", {"workdir": str(tmp_path / "work")})).run()
    assert second.ran == []
    kinds = sorted({a["kind"] for a in second.manifest["artifacts"]})
    assert kinds == ["netfiles", "netstate", "staged"]
