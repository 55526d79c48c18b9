"""Golden files for every backend and the ip script.

RESPIN_UPDATE_GOLDEN=1 rewrites tests/network/golden/ from the current output;
review the diff before committing it.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path

import pytest

from respin.stages.network.lib import script
from respin.stages.network.lib.files import Files
from respin.stages.network.lib.model import load_model
from respin.stages.network.lib.render import BACKENDS, render

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parents[1] / "fixtures" / "network"
GOLDEN = HERE / "golden"
UPDATE = os.environ.get("RESPIN_UPDATE_GOLDEN") == "1"

MODELS = ["net.toml", "two-aliases.toml"]


def _compare(files: Files, golden_dir: Path) -> None:
    if UPDATE:
        if golden_dir.exists():
            shutil.rmtree(golden_dir)
        for rel, (data, _mode) in files.items():
            (golden_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden_dir / rel).write_bytes(data)
        (golden_dir / "MODES").write_text("".join(f"{m:04o} {r}\n" for r, (_d, m) in sorted(files.items())))
        return
    assert golden_dir.is_dir(), f"no golden files in {golden_dir}; run with RESPIN_UPDATE_GOLDEN=1"
    expected = sorted(str(p.relative_to(golden_dir)) for p in golden_dir.rglob("*")
                      if p.is_file() and p.name != "MODES")
    assert sorted(files) == expected
    for rel, (data, _mode) in files.items():
        assert data.decode() == (golden_dir / rel).read_text(), rel
    modes = "".join(f"{m:04o} {r}\n" for r, (_d, m) in sorted(files.items()))
    assert modes == (golden_dir / "MODES").read_text()


@pytest.mark.parametrize("model_file", MODELS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_net_golden_backend(backend: str, model_file: str) -> None:
    model = load_model(FIXTURES / model_file)
    files = render(model, backend)  # type: ignore[arg-type]
    _compare(files, GOLDEN / Path(model_file).stem / backend)


@pytest.mark.parametrize("model_file", MODELS)
def test_net_golden_initscripts_merge(model_file: str) -> None:
    model = load_model(FIXTURES / model_file)
    base = (FIXTURES / "rt_tables.stock").read_text()
    files = render(model, "initscripts", rt_tables_mode="merge", rt_tables_base=base)
    _compare(files, GOLDEN / Path(model_file).stem / "initscripts-merge")


@pytest.mark.parametrize("model_file", MODELS)
def test_net_golden_script(model_file: str) -> None:
    model = load_model(FIXTURES / model_file)
    _compare({"setup.sh": (script.render(model).encode(), 0o755)}, GOLDEN / Path(model_file).stem / "script")


_RENDER_ALL = """\
import hashlib, sys
from pathlib import Path
from respin.stages.network.lib.model import load_model
from respin.stages.network.lib.render import BACKENDS, render
for name in sys.argv[1:]:
    model = load_model(Path(name))
    for backend in BACKENDS:
        for rel, (data, mode) in sorted(render(model, backend).items()):
            print(backend, rel, oct(mode), hashlib.sha256(data).hexdigest())
"""


def test_net_render_is_byte_stable_across_processes() -> None:
    # Two interpreters with other string hash seeds: an output that follows a set's or a
    # dict's hash order would differ between them, which one process cannot show.
    import subprocess
    import sys

    models = [str(FIXTURES / m) for m in MODELS]
    outs = [subprocess.run([sys.executable, "-c", _RENDER_ALL, *models], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2")]
    assert outs[0] and outs[0] == outs[1]


def test_net_nmstate_is_yaml_of_the_documented_shape() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed (a test-only dependency)")
    model = load_model(FIXTURES / "two-aliases.toml")
    ((_path, (data, _mode)),) = render(model, "nmstate").items()
    doc = yaml.safe_load(data)
    assert doc["interfaces"][0]["name"] == "eth0"
    assert [a["ip"] for a in doc["interfaces"][0]["ipv4"]["address"]] == [
        "192.0.2.10", "198.51.100.10", "203.0.113.10"]
    tables = {r.get("table-id") for r in doc["routes"]["config"]}
    assert tables == {None, 1, 200}
    rules = doc["route-rules"]["config"]
    assert {(r.get("ip-from"), r.get("ip-to"), r["priority"], r["route-table"]) for r in rules} == {
        ("198.51.100.10/32", None, 1000, 1), (None, "198.51.100.10/32", 1001, 1),
        ("203.0.113.10/32", None, 500, 200), (None, "203.0.113.10/32", 501, 200)}


def test_net_networkd_names_every_table_it_uses() -> None:
    model = load_model(FIXTURES / "two-aliases.toml")
    files = render(model, "networkd")
    conf = next(d for p, (d, _m) in files.items() if p.startswith("etc/systemd/networkd.conf.d/"))
    assert b"RouteTable=test:1 isp2:200\n" in conf


def test_net_pipeline_section_renders_like_standalone() -> None:
    pipeline = load_model(FIXTURES / "pipeline.toml")
    standalone = load_model(FIXTURES / "net.toml")
    assert pipeline.to_json() == standalone.to_json()
    assert tomllib.loads((FIXTURES / "pipeline.toml").read_text())["network"]["backend"] == "initscripts"
