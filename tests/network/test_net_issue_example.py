"""The issue's example, written as a pipeline file exactly as the issue shows it, through every
entry point of the installed `respin` command: `run`, `net render`, `net script`, `net check`.

Two files: the example as written (a pipeline of one stage that leaves the
rendered tree in its work dir), and the same text with staging keys added to
its `[network]` table (an image root, and a noarch RPM when rpmbuild is there).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from respin_cli import RESPIN

pytestmark = pytest.mark.slow  # builds packages or runs whole pipelines

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "network"
GOLDEN = Path(__file__).resolve().parent / "golden" / "net"

ISSUE_EXAMPLE = """\
[network]
device = "eth0"
address = "192.0.2.10/24"
gateway = "192.0.2.1"

[[network.alias]]
device = "eth0:1"
address = "198.51.100.10/24"
gateway = "198.51.100.1"
table = { id = 1, name = "test" }
"""

RPMBUILD = shutil.which("rpmbuild") is not None
STAGING = 'root = "image"\n' + ('rpm = { name = "net-policy", version = "1" }\n' if RPMBUILD else "")
WITH_STAGING = ISSUE_EXAMPLE.replace('gateway = "192.0.2.1"\n', 'gateway = "192.0.2.1"\n' + STAGING, 1)

RENDERED = sorted(str(p.relative_to(GOLDEN / "initscripts")) for p in (GOLDEN / "initscripts").rglob("*")
                  if p.is_file() and p.name != "MODES")



def _respin(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(RESPIN), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"},
                          check=False, timeout=300)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def _body(data: bytes) -> bytes:
    """A rendered file without its first line (which names the file it came from)."""
    head, _, rest = data.partition(b"\n")
    assert head.startswith(b"# Written by respin from "), head
    return rest


def _assert_rendered(root: Path) -> None:
    for rel in RENDERED:
        assert _body((root / rel).read_bytes()) == _body((GOLDEN / "initscripts" / rel).read_bytes()), rel


def test_net_issue_example_is_the_fixture_model() -> None:
    assert (FIXTURES / "net.toml").read_text() == ISSUE_EXAMPLE
    assert WITH_STAGING.startswith(ISSUE_EXAMPLE.split("\n\n")[0]) and "\n[[network.alias]]\n" in WITH_STAGING


@pytest.mark.parametrize("text", [ISSUE_EXAMPLE, WITH_STAGING], ids=["as-written", "with-staging"])
def test_net_issue_example_through_run_render_script_check(tmp_path: Path, text: str) -> None:
    pipeline = tmp_path / "example.toml"
    pipeline.write_text(text)
    staged = text != ISSUE_EXAMPLE
    if staged:
        (tmp_path / "image").mkdir()

    # respin run: one stage, "network"; a second run does nothing.
    first = _respin("run", "--json", pipeline.name, cwd=tmp_path)
    report = json.loads(first.stdout)
    assert [(s["name"], s["status"]) for s in report["stages"]] == [("network", "ran")]
    kinds = {a["kind"]: a for a in report["artifacts"]}
    staging = ["netstate", "staged"] + (["network-rpm"] if RPMBUILD else [])
    assert sorted(kinds) == sorted(["netfiles"] + (staging if staged else []))
    assert kinds["netfiles"]["meta"]["files"] == RENDERED
    _assert_rendered(Path(kinds["netfiles"]["path"]))
    if staged:
        _assert_rendered(tmp_path / "image")
        if RPMBUILD:
            rpm = Path(kinds["network-rpm"]["path"])
            assert rpm.name == "net-policy-1-1.noarch.rpm"
            listed = subprocess.run(["rpm", "-qlp", str(rpm)], capture_output=True, text=True,
                                    check=True, timeout=60).stdout.split()
            assert listed == ["/" + rel for rel in RENDERED]
    second = _respin("run", "--json", pipeline.name, cwd=tmp_path)
    assert [s["status"] for s in json.loads(second.stdout)["stages"]] == ["up to date"]
    assert "nothing to do" in second.stderr

    # respin net render FILE --root DIR, twice: everything written, then nothing changed.
    root = tmp_path / "other-root"
    root.mkdir()
    out = _respin("net", "render", pipeline, "--root", root, cwd=tmp_path).stdout
    assert out.split() == [w for rel in RENDERED for w in ("write", rel)]
    _assert_rendered(root)
    out = _respin("net", "render", pipeline, "--root", root, cwd=tmp_path).stdout
    assert out.split() == [w for rel in RENDERED for w in ("unchanged", rel)]

    # respin net script FILE: the golden script but for the file it names.
    script = _respin("net", "script", pipeline, cwd=tmp_path).stdout
    golden = (GOLDEN / "script" / "setup.sh").read_text()
    assert script == golden.replace("from net.toml:", "from example.toml:")

    # respin net check FILE
    check = _respin("net", "check", pipeline, cwd=tmp_path).stdout
    assert check == (f"{pipeline}: ok: eth0 192.0.2.10/24 via 192.0.2.1; "
                     "eth0:1 198.51.100.10/24 via 198.51.100.1 table test (1)\n")
