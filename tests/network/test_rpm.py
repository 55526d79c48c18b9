"""The noarch RPM: built by the real rpmbuild, read back with the rpm bindings, byte-reproducible."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from respin.pipeline.errors import ConfigError
from respin.pipeline.options import OptionsError, parse_options
from respin.stages.network.lib.model import load_model
from respin.stages.network.lib.render import render
from respin.stages.network.lib.rpm import RpmOptions, build_rpm, spec_text

rpm = pytest.importorskip("rpm", reason="rpm Python bindings (python3-rpm) are not installed")

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "network"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpmbuild is not installed"),
]


def _read_rpm(path: Path) -> tuple[Any, dict[str, tuple[bytes, int]]]:
    """The header and {path: (content, mode)} of every payload file."""
    ts = rpm.TransactionSet()
    ts.setVSFlags(rpm._RPMVSF_NOSIGNATURES)
    fd = os.open(path, os.O_RDONLY)
    try:
        hdr = ts.hdrFromFdno(fd)
        files = rpm.files(hdr)
        payload = rpm.fd(fd, "r", hdr["payloadcompressor"])
        archive = files.archive(payload)
        out: dict[str, tuple[bytes, int]] = {}
        for entry in archive:
            out[entry.name] = (archive.read(), entry.mode)
        payload.close()
    finally:
        os.close(fd)
    return hdr, out


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, tuple[bytes, int]]]:
    files = dict(render(load_model(FIXTURES / "net.toml"), "initscripts"))
    opts = RpmOptions(name="respin-network-test", version="1.0")
    first, second = (build_rpm(files, opts, tmp_path_factory.mktemp(d), description="test package",
                               epoch=1700000000) for d in ("a", "b"))
    return first, second, files


def test_net_rpm_payload_is_exactly_the_rendered_files(
        built: tuple[Path, Path, dict[str, tuple[bytes, int]]]) -> None:
    path, _second, files = built
    assert path.name == "respin-network-test-1.0-1.noarch.rpm"
    hdr, payload = _read_rpm(path)
    assert hdr["arch"] == "noarch"
    assert hdr["buildhost"] == "respin.build"
    assert hdr["buildtime"] == 1700000000
    assert sorted(payload) == sorted(f"/{rel}" for rel in files)
    for rel, (data, mode) in files.items():
        got_data, got_mode = payload[f"/{rel}"]
        assert got_data == data
        assert stat.S_IMODE(got_mode) == mode and stat.S_ISREG(got_mode)
    for f in rpm.files(hdr):
        assert f.user == "root" and f.group == "root"
        assert f.mtime <= 1700000000


def test_net_rpm_same_input_same_bytes(built: tuple[Path, Path, dict[str, tuple[bytes, int]]]) -> None:
    first, second, _files = built
    assert first.read_bytes() == second.read_bytes()


def test_net_rpm_networkmanager_keeps_mode_0600(tmp_path: Path) -> None:
    files = dict(render(load_model(FIXTURES / "net.toml"), "networkmanager"))
    path = build_rpm(files, RpmOptions(name="nm-net", version="2"), tmp_path, description="x", epoch=0)
    _hdr, payload = _read_rpm(path)
    ((name, (_data, mode)),) = payload.items()
    assert name.endswith("eth0.nmconnection") and stat.S_IMODE(mode) == 0o600


def test_net_rpm_honours_source_date_epoch_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1600000000")
    files = dict(render(load_model(FIXTURES / "net.toml"), "nmstate"))
    path = build_rpm(files, RpmOptions(name="sde", version="1"), tmp_path, description="x")
    hdr, _payload = _read_rpm(path)
    assert hdr["buildtime"] == 1600000000


def test_net_spec_lists_files_as_config() -> None:
    files = {"etc/a:1": (b"x", 0o644)}
    spec = spec_text(RpmOptions(name="n", version="1", summary="100% policy"), files, "d")
    assert "%attr(0644,root,root) %config(noreplace) /etc/a:1\n" in spec
    assert "Summary: 100%% policy" in spec


@pytest.mark.parametrize(("kwargs", "key", "reason"), [
    ({"name": "bad name", "version": "1"}, "name", "not a valid package name"),
    ({"name": "n", "version": "1-2"}, "version", "is not valid"),
    ({"name": "n", "version": "1", "release": ""}, "release", "is not valid"),
])
def test_net_rpm_options_are_checked(kwargs: dict[str, str], key: str, reason: str) -> None:
    # Each check rides on its field's type: the table is refused as it is read, at its key.
    with pytest.raises(OptionsError) as info:
        parse_options(RpmOptions, kwargs, "net.toml [network] rpm")
    (line,) = info.value.problems
    assert line.startswith(f"net.toml [network] rpm: {key}: '{kwargs[key]}' ") and reason in line, line


def test_net_bad_source_date_epoch_is_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH"):
        build_rpm({}, RpmOptions(name="n", version="1"), tmp_path, description="x")
