"""`respin net`: through `register` on a bare parser, and end to end through the `respin` command."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import pytest
from respin_cli import RESPIN, assert_one_line_error

from respin.pipeline.errors import ConfigError, InputError
from respin.stages.network.cli import register
from respin.stages.network.lib import rt_tables

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "network"
NET = FIXTURES / "net.toml"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser(prog="respin")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    code = args.func(args)
    return code, capsys.readouterr().out


def test_net_cli_check(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(["net", "check", str(NET)], capsys)
    assert code == 0
    assert out == (f"{NET}: ok: eth0 192.0.2.10/24 via 192.0.2.1; "
                   "eth0:1 198.51.100.10/24 via 198.51.100.1 table test (1)\n")


def test_net_cli_script_matches_golden(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(["net", "script", str(NET)], capsys)
    assert code == 0
    assert out == (Path(__file__).parent / "golden" / "net" / "script" / "setup.sh").read_text()


def test_net_cli_render_twice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(["net", "render", str(NET), "--root", str(tmp_path)], capsys)
    assert code == 0
    assert "write     etc/sysconfig/network-scripts/rule-eth0:1\n" in out
    code, out = _run(["net", "render", str(NET), "--root", str(tmp_path)], capsys)
    assert {line.split()[0] for line in out.splitlines()} == {"unchanged"}


@pytest.mark.parametrize("backend", ["networkmanager", "networkd", "nmstate"])
def test_net_cli_render_backends(tmp_path: Path, backend: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _run(["net", "render", str(NET), "--root", str(tmp_path), "--backend", backend], capsys)
    assert code == 0 and out.startswith("write")


def test_net_cli_render_pipeline_file_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out = _run(["net", "render", str(FIXTURES / "pipeline.toml"), "--root", str(tmp_path)], capsys)
    assert code == 0
    assert (tmp_path / "etc/sysconfig/network-scripts/ifcfg-eth0:1").is_file()


def test_net_cli_errors_are_raised_for_the_main_cli(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(NET.read_text().replace('gateway = "198.51.100.1"', 'gateway = "192.0.2.1"'))
    with pytest.raises(ConfigError, match=r"bad.toml: network.alias\[0\].gateway: "):
        _run(["net", "script", str(bad)], capsys)
    foreign = tmp_path / "root" / "etc/sysconfig/network-scripts/ifcfg-eth0"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("DEVICE=eth0\n")
    with pytest.raises(InputError, match="not written by respin"):
        _run(["net", "render", str(NET), "--root", str(tmp_path / "root")], capsys)


def _respin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(RESPIN), *args], capture_output=True, text=True, check=False)


def _respin_knows_net() -> bool:
    if not RESPIN.exists():
        return False
    proc = _respin("net", "--help")
    return proc.returncode == 0


needs_respin = pytest.mark.skipif(
    not _respin_knows_net(), reason="`respin net` is not registered yet (entry point respin.commands: net)")


@needs_respin
def test_net_e2e_check_script_render(tmp_path: Path) -> None:
    proc = _respin("net", "check", str(NET))
    assert proc.returncode == 0 and proc.stdout.startswith(f"{NET}: ok:")
    proc = _respin("net", "script", str(NET))
    assert proc.returncode == 0 and proc.stdout.startswith("#!/bin/sh\n")
    proc = _respin("net", "render", str(NET), "--root", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "etc/iproute2/rt_tables.d/test.conf").is_file()


@needs_respin
def test_net_e2e_errors_are_one_line_with_exit_code(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(NET.read_text().replace("id = 1", "id = 253"))
    proc = _respin("net", "check", str(bad))
    assert proc.returncode == ConfigError.exit_code
    assert proc.stderr == (f"respin: error: {bad}: network.alias[0].table.id: 253 is reserved "
                           "(0 unspec, 252 compat, 253 default, 254 main, 255 local)\n")
    (tmp_path / "root" / "etc" / "sysconfig" / "network-scripts").mkdir(parents=True)
    shutil.copy(NET, tmp_path / "root" / "etc" / "sysconfig" / "network-scripts" / "ifcfg-eth0")
    proc = _respin("net", "render", str(NET), "--root", str(tmp_path / "root"))
    assert proc.returncode == InputError.exit_code
    assert proc.stderr.count("\n") == 1 and "refusing to overwrite" in proc.stderr


def _respin_knows_network_stage() -> bool:
    return RESPIN.exists() and any(line.split()[:1] == ["network"]
                                   for line in _respin("stages").stdout.splitlines())


@pytest.mark.skipif(not _respin_knows_network_stage(),
                    reason="the network stage is not registered yet (entry point respin.stages: network)")
def test_net_e2e_pipeline_run_twice(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "pipeline.toml", tmp_path / "pipeline.toml")
    (tmp_path / "image").mkdir()
    first = subprocess.run([str(RESPIN), "run", "pipeline.toml"], cwd=tmp_path, capture_output=True,
                           text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert "netfiles" in first.stdout
    assert (tmp_path / "image/etc/sysconfig/network-scripts/route-eth0:1").is_file()
    second = subprocess.run([str(RESPIN), "run", "pipeline.toml"], cwd=tmp_path, capture_output=True,
                            text=True, check=False)
    assert second.returncode == 0 and "nothing to do" in second.stderr


def test_net_check_cuts_a_huge_value_on_its_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(NET.read_text().replace('device = "eth0"', f'device = "{"e" * 200_000}"', 1))
    proc = _respin("net", "check", str(bad))
    assert proc.returncode == ConfigError.exit_code
    assert proc.stderr.count("\n") == 1 and "characters cut" in proc.stderr, proc.stderr[:500]
    assert len(proc.stderr) < 1000


@pytest.mark.parametrize("mode", ["d", "merge"])
def test_net_rt_tables_clash_cites_the_clashing_line(tmp_path: Path, mode: str) -> None:
    """Line numbers count respin's own block: the error names the line that clashes."""
    target = tmp_path / "etc/iproute2/rt_tables"
    target.parent.mkdir(parents=True)
    target.write_text(f"255\tlocal\n{rt_tables.BEGIN}\n1\ttest\n{rt_tables.END}\n1\tother\n")
    proc = _respin("net", "render", str(NET), "--root", str(tmp_path), "--rt-tables", mode)
    assert_one_line_error(proc, InputError.exit_code,
                          f"{target}:5: table id 1 is already named 'other'; cannot name it 'test'")


def test_net_render_honours_the_files_backend(tmp_path: Path) -> None:
    model = tmp_path / "net.toml"
    model.write_text(NET.read_text().replace('[network]\n', '[network]\nbackend = "networkd"\n'
                                             'rt_tables = "merge"\n', 1))
    root = tmp_path / "root"
    out = _respin("net", "render", str(model), "--root", str(root))
    assert out.returncode == 0, out.stderr
    assert "write     etc/systemd/network/10-respin-eth0.network\n" in out.stdout
    assert not (root / "etc/sysconfig").exists()
    # --backend overrides it; the file's rt_tables counts where it applies.
    out = _respin("net", "render", str(model), "--root", str(tmp_path / "other"), "--backend", "initscripts")
    assert out.returncode == 0, out.stderr
    assert "write     etc/iproute2/rt_tables\n" in out.stdout and "rt_tables.d" not in out.stdout
    out = _respin("net", "render", str(model), "--root", str(tmp_path / "third"), "--backend", "initscripts",
                  "--rt-tables", "d")
    assert "write     etc/iproute2/rt_tables.d/test.conf\n" in out.stdout


def test_net_render_refuses_a_bad_backend_in_the_file(tmp_path: Path) -> None:
    model = tmp_path / "net.toml"
    model.write_text(NET.read_text().replace('[network]\n', '[network]\nbackend = "wicked"\n', 1))
    proc = _respin("net", "render", str(model), "--root", str(tmp_path / "root"))
    assert_one_line_error(proc, ConfigError.exit_code, "backend")
    assert not (tmp_path / "root").exists()
