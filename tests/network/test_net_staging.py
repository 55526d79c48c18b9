"""Staging into an image root: idempotent, never silently overwriting a file respin did not write."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from respin.pipeline import fsutil
from respin.pipeline.errors import ConfigError, InputError
from respin.stages.network.lib import rt_tables
from respin.stages.network.lib.model import load_model
from respin.stages.network.lib.render import render, render_for_root
from respin.stages.network.lib.root import STATE_PATH, stage_into_root, write_tree

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "network"
IFCFG_ALIAS = "etc/sysconfig/network-scripts/ifcfg-eth0:1"
DROPIN = "etc/iproute2/rt_tables.d/test.conf"


def _snapshot(root: Path) -> dict[str, tuple[int, int, int, bytes]]:
    """Every file with inode, mode, mtime and content: anything a rewrite would change."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_ino, st.st_mode, st.st_mtime_ns, p.read_bytes())
    return out


@pytest.fixture
def model_files() -> dict[str, tuple[bytes, int]]:
    return dict(render(load_model(FIXTURES / "net.toml"), "initscripts"))


def test_net_stage_writes_files_and_state(tmp_path: Path, model_files: dict[str, tuple[bytes, int]]) -> None:
    changes = stage_into_root(model_files, tmp_path)
    assert [c.action for c in changes] == ["write"] * len(model_files)
    for rel, (data, mode) in model_files.items():
        assert (tmp_path / rel).read_bytes() == data
        assert (tmp_path / rel).stat().st_mode & 0o7777 == mode
    state = json.loads((tmp_path / STATE_PATH).read_text())
    assert sorted(state["files"]) == sorted(model_files)


def test_net_staging_twice_changes_nothing(tmp_path: Path, model_files: dict[str, tuple[bytes, int]]) -> None:
    stage_into_root(model_files, tmp_path)
    before = _snapshot(tmp_path)
    changes = stage_into_root(model_files, tmp_path)
    assert {c.action for c in changes} == {"unchanged"}
    assert _snapshot(tmp_path) == before


def test_net_foreign_file_is_refused_then_forced(tmp_path: Path,
                                                 model_files: dict[str, tuple[bytes, int]]) -> None:
    foreign = tmp_path / IFCFG_ALIAS
    foreign.parent.mkdir(parents=True)
    foreign.write_text("DEVICE=eth0:1\nIPADDR=10.0.0.1\n")
    with pytest.raises(InputError) as info:
        stage_into_root(model_files, tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{foreign}: exists and was not written by respin; refusing to overwrite")
    # Nothing at all was written: not the other files, not the state.
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["ifcfg-eth0:1"]
    assert foreign.read_text() == "DEVICE=eth0:1\nIPADDR=10.0.0.1\n"

    stage_into_root(model_files, tmp_path, force=True)
    assert foreign.read_bytes() == model_files[IFCFG_ALIAS][0]


def test_net_identical_foreign_file_is_adopted(tmp_path: Path,
                                               model_files: dict[str, tuple[bytes, int]]) -> None:
    data, mode = model_files[DROPIN]
    target = tmp_path / DROPIN
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    target.chmod(mode)
    ino = target.stat().st_ino
    stage_into_root(model_files, tmp_path)
    assert target.stat().st_ino == ino


def test_net_hand_edited_file_is_refused(tmp_path: Path, model_files: dict[str, tuple[bytes, int]]) -> None:
    stage_into_root(model_files, tmp_path)
    edited = tmp_path / IFCFG_ALIAS
    edited.write_text(edited.read_text() + "MTU=9000\n")
    with pytest.raises(InputError, match="was changed since respin wrote it; refusing"):
        stage_into_root(model_files, tmp_path)


def test_net_restage_other_backend_replaces_only_own_files(
        tmp_path: Path, model_files: dict[str, tuple[bytes, int]]) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hostname").write_text("img\n")
    stage_into_root(model_files, tmp_path)
    nm = render(load_model(FIXTURES / "net.toml"), "networkmanager")
    changes = stage_into_root(nm, tmp_path)
    assert {c.path for c in changes if c.action == "remove"} == set(model_files)
    assert (tmp_path / "etc" / "hostname").read_text() == "img\n"
    for rel in model_files:
        assert not (tmp_path / rel).exists()
    (path,) = nm
    assert (tmp_path / path).stat().st_mode & 0o777 == 0o600


def test_net_hand_edited_stale_file_is_refused(tmp_path: Path,
                                               model_files: dict[str, tuple[bytes, int]]) -> None:
    stage_into_root(model_files, tmp_path)
    (tmp_path / IFCFG_ALIAS).write_text("edited\n")
    nm = render(load_model(FIXTURES / "net.toml"), "networkmanager")
    with pytest.raises(InputError, match="no longer rendered"):
        stage_into_root(nm, tmp_path)


def test_net_symlinked_directory_is_refused(tmp_path: Path,
                                            model_files: dict[str, tuple[bytes, int]]) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "etc").symlink_to(outside)
    with pytest.raises(InputError, match="is a symlink"):
        stage_into_root(model_files, root)
    assert list(outside.iterdir()) == []


def test_net_root_must_be_a_directory(tmp_path: Path, model_files: dict[str, tuple[bytes, int]]) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="image root is not a directory"):
        stage_into_root(model_files, tmp_path / "file")


def test_net_rt_tables_merge_keeps_lines_and_is_idempotent(tmp_path: Path) -> None:
    model = load_model(FIXTURES / "net.toml")
    stock = (FIXTURES / "rt_tables.stock").read_text()
    target = tmp_path / rt_tables.RT_TABLES
    target.parent.mkdir(parents=True)
    target.write_text(stock)
    target.chmod(0o640)
    for _ in range(2):
        files, merged = render_for_root(model, "initscripts", "merge", tmp_path)
        stage_into_root(files, tmp_path, merged=merged)
        text = target.read_text()
        assert text.startswith(stock)
        assert text.count("1\ttest\n") == 1
        assert target.stat().st_mode & 0o777 == 0o640
    before = _snapshot(tmp_path)
    files, merged = render_for_root(model, "initscripts", "merge", tmp_path)
    stage_into_root(files, tmp_path, merged=merged)
    assert _snapshot(tmp_path) == before
    assert not (tmp_path / rt_tables.RT_TABLES_D).exists()

    # Back to drop-ins: the block leaves rt_tables, the rest stays.
    files, merged = render_for_root(model, "initscripts", "d", tmp_path)
    stage_into_root(files, tmp_path, merged=merged)
    assert target.read_text() == stock
    assert (tmp_path / DROPIN).is_file()


def test_net_rt_tables_merge_without_file_uses_vendor_copy(tmp_path: Path) -> None:
    model = load_model(FIXTURES / "net.toml")
    vendor = tmp_path / rt_tables.RT_TABLES_VENDOR
    vendor.parent.mkdir(parents=True)
    vendor.write_text("255\tlocal\n254\tmain\n253\tdefault\n0\tunspec\n")
    files, _merged = render_for_root(model, "initscripts", "merge", tmp_path)
    assert files[rt_tables.RT_TABLES][0].decode().startswith("255\tlocal\n254\tmain\n")


def test_net_rt_tables_existing_same_entry_is_not_repeated() -> None:
    model = load_model(FIXTURES / "net.toml")
    text = rt_tables.merge("255 local\n1 test\n", [a.table for a in model.aliases], "rt_tables")
    assert text == "255 local\n1 test\n"


@pytest.mark.parametrize(("existing", "reason"), [
    ("1\tother\n", "table id 1 is already named 'other'"),
    ("0x7 test # mine\n", "table name 'test' already means id 7"),
])
def test_net_rt_tables_clash_is_refused(tmp_path: Path, existing: str, reason: str) -> None:
    model = load_model(FIXTURES / "net.toml")
    target = tmp_path / rt_tables.RT_TABLES
    target.parent.mkdir(parents=True)
    target.write_text("255\tlocal\n" + existing)
    with pytest.raises(InputError) as info:
        render_for_root(model, "initscripts", "merge", tmp_path)
    assert str(info.value).startswith(f"{target}:2: {reason}; cannot ")
    assert "\n" not in str(info.value)


def test_net_rt_tables_corrupt_line_is_refused(tmp_path: Path) -> None:
    target = tmp_path / rt_tables.RT_TABLES
    target.parent.mkdir(parents=True)
    target.write_text("255 local\nbogus\n")
    with pytest.raises(InputError, match=r"rt_tables:2: not an rt_tables line"):
        render_for_root(load_model(FIXTURES / "net.toml"), "initscripts", "merge", tmp_path)


def test_net_merge_needs_a_root() -> None:
    with pytest.raises(ConfigError, match="'merge' needs an image root"):
        render_for_root(load_model(FIXTURES / "net.toml"), "initscripts", "merge", None)


def test_net_write_tree_is_exactly_the_files(tmp_path: Path,
                                             model_files: dict[str, tuple[bytes, int]]) -> None:
    dest = tmp_path / "netfiles"
    write_tree(model_files, dest)
    write_tree(model_files, dest)  # replaced as a whole, no leftovers
    found = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert found == sorted(model_files)
    assert sorted(os.listdir(tmp_path)) == ["netfiles"]


def test_net_interrupted_staging_can_be_repeated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 model_files: dict[str, tuple[bytes, int]]) -> None:
    stage_into_root(model_files, tmp_path)
    changed = {rel: (data.replace(b"eth0", b"eth0 "), mode) if rel.endswith(":1") else (data, mode)
               for rel, (data, mode) in model_files.items()}
    real_write = fsutil.atomic_write_at
    calls = []

    def failing_write(dir_fd: int, name: str, data: bytes, mode: int = 0o644, **kw: Any) -> None:
        if name != "network.json":
            calls.append(name)
            if len(calls) == 2:
                raise KeyboardInterrupt
        real_write(dir_fd, name, data, mode, **kw)

    monkeypatch.setattr(fsutil, "atomic_write_at", failing_write)
    with pytest.raises(KeyboardInterrupt):
        stage_into_root(changed, tmp_path)
    monkeypatch.setattr(fsutil, "atomic_write_at", real_write)
    # Half the files are new, half old: both count as respin's, whichever model comes next.
    stage_into_root(model_files, tmp_path)
    for rel, (data, _mode) in model_files.items():
        assert (tmp_path / rel).read_bytes() == data
    assert "pending" not in (tmp_path / STATE_PATH).read_text()


@pytest.mark.parametrize(("where", "text", "reason"), [
    (rt_tables.RT_TABLES, "255\tlocal\n1\tisp\n", "table id 1 is already named 'isp'"),
    (rt_tables.RT_TABLES_VENDOR, "255\tlocal\n9\ttest\n", "table name 'test' already means id 9"),
    (f"{rt_tables.RT_TABLES_D}/vendor.conf", "1 other\n", "table id 1 is already named 'other'"),
])
def test_net_dropin_clashing_with_image_tables_is_refused(tmp_path: Path, where: str, text: str,
                                                          reason: str) -> None:
    (tmp_path / where).parent.mkdir(parents=True)
    (tmp_path / where).write_text(text)
    with pytest.raises(InputError, match=f"^{tmp_path / where}:[12]: {reason}"):
        render_for_root(load_model(FIXTURES / "net.toml"), "initscripts", "d", tmp_path)


def test_net_own_dropin_with_old_id_is_not_a_clash(tmp_path: Path) -> None:
    (tmp_path / DROPIN).parent.mkdir(parents=True)
    (tmp_path / DROPIN).write_text("7\ttest\n")
    files, _merged = render_for_root(load_model(FIXTURES / "net.toml"), "initscripts", "d", tmp_path)
    assert DROPIN in files


def test_net_symlink_file_is_foreign_and_force_replaces_the_link_only(
        tmp_path: Path, model_files: dict[str, tuple[bytes, int]]) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep\n")
    root = tmp_path / "root"
    (root / DROPIN).parent.mkdir(parents=True)
    (root / DROPIN).symlink_to(outside)
    with pytest.raises(InputError, match="not written by respin"):
        stage_into_root(model_files, root)
    stage_into_root(model_files, root, force=True)
    assert not (root / DROPIN).is_symlink()
    assert outside.read_text() == "keep\n"


def test_net_directory_in_the_way_is_refused(tmp_path: Path,
                                             model_files: dict[str, tuple[bytes, int]]) -> None:
    (tmp_path / DROPIN).mkdir(parents=True)
    with pytest.raises(InputError, match="is a directory"):
        stage_into_root(model_files, tmp_path, force=True)
    assert not (tmp_path / STATE_PATH).exists()
