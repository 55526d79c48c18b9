"""The initrd pipeline stages, run with a Context built here (no runner needed)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from initrd_util import EPOCH, make_tree, run_cli

from respin.pipeline.errors import ConfigError
from respin.pipeline.stage import Artifact, Context
from respin.stages.initrd.extract import ExtractStage
from respin.stages.initrd.lib.writer import pack
from respin.stages.initrd.modify import ModifyStage
from respin.stages.initrd.pack import PackStage


def ctx_for(tmp_path: Path, stage: str, produced: dict[str, list[Artifact]]) -> Context:
    workdir = tmp_path / "work"
    return Context(workdir=workdir, source=tmp_path / "pipeline.toml", settings={"source_date_epoch": EPOCH},
                   stagedir=workdir / "stages" / stage, log=logging.getLogger("test"), produced=produced)


def test_extract_modify_pack(tmp_path: Path) -> None:
    original = tmp_path / "orig.img"
    pack(make_tree(tmp_path / "tree"), original, compress="zstd", epoch=EPOCH)
    (tmp_path / "files").mkdir()
    (tmp_path / "files/motd").write_text("rebuilt\n")
    netfiles = tmp_path / "rendered"
    (netfiles / "network-scripts").mkdir(parents=True)
    (netfiles / "network-scripts/ifcfg-eth0:1").write_text("DEVICE=eth0:1\n")
    (netfiles / "network-scripts/route-eth0:1").write_text("table test default via 10.0.0.2\n")
    rpm = tmp_path / "kernel-6.1.rpm"
    rpm.write_bytes(b"rpm bytes")
    produced: dict[str, list[Artifact]] = {
        "render": [Artifact(netfiles, "netfiles")], "rebuild": [Artifact(rpm, "rpm")]}

    extract_stage = ExtractStage.from_table({"image": "orig.img"}, "pipeline.toml [initrd-extract]")
    ctx = ctx_for(tmp_path, "initrd-extract", produced)
    assert extract_stage.inputs(ctx) == [original]
    produced["initrd-extract"] = extract_stage.run(ctx)
    assert produced["initrd-extract"][0].kind == "tree"

    modify = ModifyStage.from_table({
        "add": {"etc/motd": "files/motd", "etc/sysconfig": "@netfiles", "root/rpms": "@rpm"},
        "remove": ["etc/fstab", "lib/modules"],
        "modes": {"etc/motd": "0600"},
    }, "pipeline.toml [initrd-modify]")
    ctx = ctx_for(tmp_path, "initrd-modify", produced)
    assert tmp_path / "files/motd" in modify.inputs(ctx)
    produced["initrd-modify"] = modify.run(ctx)

    pack_stage = PackStage.from_table({"compress": "gzip"}, "pipeline.toml [initrd-pack]")
    ctx = ctx_for(tmp_path, "initrd-pack", produced)
    [image] = pack_stage.run(ctx)
    assert image.kind == "initrd" and image.path == ctx.stagedir / "initrd.img"
    code, out, _ = run_cli("list", "--long", image.path)
    assert code == 0
    listing = out.decode()
    assert "etc/fstab" not in listing and "lib/modules" not in listing
    assert "-rw------- " in next(ln for ln in listing.splitlines() if ln.endswith(" etc/motd"))
    assert run_cli("cat", image.path, "etc/motd")[1] == b"rebuilt\n"
    assert run_cli("cat", image.path, "etc/sysconfig/network-scripts/route-eth0:1")[1].startswith(b"table")
    assert run_cli("cat", image.path, "root/rpms/kernel-6.1.rpm")[1] == b"rpm bytes"
    assert run_cli("cat", image.path, "bin/tool")[1] == (tmp_path / "tree/bin/tool").read_bytes()
    # The earlier stage's tree is untouched (modify works on its own copy).
    assert (produced["initrd-extract"][0].path / "main/etc/fstab").exists()
    # Same inputs, same bytes.
    again = PackStage.from_table({"compress": "gzip", "output": str(tmp_path / "again.img")}, "p")
    [second] = again.run(ctx)
    assert second.path.read_bytes() == image.path.read_bytes()


def test_unknown_option_and_bad_values_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="imgae: unknown key"):
        ExtractStage.from_table({"imgae": "x"}, "p.toml [initrd-extract]")
    # The choices come from codecs.CODECS; the line is the one a Literal of them gave.
    choices = "'gzip' or 'xz' or 'zstd' or 'lz4' or 'bzip2' or 'none'"
    for value, shown in (("brotli", "'brotli'"), ("lzma", "'lzma'"), (5, "5")):
        with pytest.raises(ConfigError) as caught:
            PackStage.from_table({"compress": value}, "p.toml [initrd-pack]")
        assert str(caught.value) == f"p.toml [initrd-pack]: compress: expected {choices}, got {shown}"


def test_bad_source_date_epoch_option_names_the_table_and_key() -> None:
    # Found as the file is read (the check pass), not when the stage runs.
    with pytest.raises(ConfigError, match=r"p\.toml \[initrd-pack\]: source_date_epoch: .*before 1970"):
        PackStage.from_table({"source_date_epoch": -5}, "p.toml [initrd-pack]")
    with pytest.raises(ConfigError, match=r"source_date_epoch: .*out of range for newc"):
        PackStage.from_table({"source_date_epoch": 1 << 33}, "p.toml [initrd-pack]")


def test_modify_refuses_paths_through_symlinks_and_dotdot(tmp_path: Path) -> None:
    original = tmp_path / "orig.img"
    pack(make_tree(tmp_path / "tree"), original, compress="none", epoch=EPOCH)
    produced: dict[str, list[Artifact]] = {}
    produced["x"] = ExtractStage.from_table({"image": str(original)}, "p").run(
        ctx_for(tmp_path, "initrd-extract", produced))
    (tmp_path / "evil").write_text("x")
    for table, needle in (({"add": {"lib64/evil": "evil"}}, "symlink"),
                          ({"add": {"../evil": "evil"}}, "'..'"),
                          ({"remove": ["not/there"]}, "not in the tree"),
                          ({"add": {"x": "@nothing"}}, "no earlier stage")):
        with pytest.raises(ConfigError, match=needle):
            ModifyStage.from_table(table, "p").run(ctx_for(tmp_path, "initrd-modify", produced))
    assert not (tmp_path / "work/stages/initrd-modify/tree").exists()


def test_extract_takes_the_initrd_of_an_earlier_stage(tmp_path: Path) -> None:
    image = tmp_path / "built.img"
    pack(make_tree(tmp_path / "tree"), image, compress="xz", epoch=EPOCH)
    produced = {"mkinitrd": [Artifact(image, "initrd")]}
    [tree] = ExtractStage.from_table({}, "p").run(ctx_for(tmp_path, "initrd-extract", produced))
    assert (tree.path / "main/bin/tool").is_file()


def test_extract_stage_replaces_its_own_tree_in_the_work_dir(tmp_path: Path) -> None:
    """The stage's tree is its output in the work dir: the runner reruns the stage when it was
    touched, and the stage replaces it (the record of what extract wrote does not stop it);
    modify's copy carries no record, since it no longer describes that tree."""
    image = tmp_path / "built.img"
    pack(make_tree(tmp_path / "tree"), image, compress="gzip", epoch=EPOCH)
    stage = ExtractStage.from_table({"image": str(image)}, "p")
    [tree] = stage.run(ctx_for(tmp_path, "initrd-extract", {}))
    (tree.path / "main/etc/fstab").write_text("edited in the work dir\n")
    [again] = stage.run(ctx_for(tmp_path, "initrd-extract", {}))
    assert (again.path / "main/etc/fstab").read_text() == "/dev/sda1 / ext4 defaults 0 1\n"
    assert (again.path / "initrd-extracted.json").is_file()
    [modified] = ModifyStage.from_table({"remove": ["etc/fstab"]}, "p").run(
        ctx_for(tmp_path, "initrd-modify", {"initrd-extract": [again]}))
    assert not (modified.path / "initrd-extracted.json").exists()


def test_bad_max_size_and_max_entries_are_found_as_the_file_is_read() -> None:
    # Both in one pass, each naming the table's key (not the CLI's --max-size).
    from respin.stages.initrd.extract import ExtractStage

    with pytest.raises(ConfigError) as err:
        ExtractStage.from_table({"max_size": "abc", "max_entries": 0}, "p.toml [initrd-extract]")
    assert err.value.problems == ("p.toml [initrd-extract]: max_size: 'abc': want a positive size such as "  # type: ignore[attr-defined]
                                  "512M or 4G", "p.toml [initrd-extract]: max_entries: 0: want a positive "
                                  "whole number such as 2000000")
    assert ExtractStage.from_table({"max_size": "1M"}, "p.toml").options.max_size == 1 << 20
