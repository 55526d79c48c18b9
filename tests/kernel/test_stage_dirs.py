"""Each stage writes only in its own directory, the workspaces it declares and the outputs
the user named: a whole kernel run, one stage at a time, with the work dir and every path
beside it compared before and after each."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from respin_cli import respin
from signkeys import gpg_home, stop_agent

from fixtures.build import build_srpm

TOOLS = ("rpmbuild", "gpg", "git", "createrepo_c")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                 reason="rpmbuild, gpg, git and createrepo_c are needed")]

STAGES = ["fetch", "sign", "prep", "config", "diff", "inject", "distgit", "rebuild", "verify", "publish"]
# The engine's own, in the work dir: its mark, lock, manifest and per-stage state.
ENGINE = {".respin-workdir", ".lock", "manifest.json", "state", "stages"}


@pytest.fixture(scope="module", params=["kernel-2010", "kernel-current"])
def srpm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_srpm(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    home, fpr = gpg_home(tmp_path_factory.mktemp("keys"), "release")
    yield home, fpr
    stop_agent(home)


def _state(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under `root` (links not followed): its type, mode, owner and, for a file,
    its size and mtime (a rewrite or a change of its group shows), for a link its target."""
    found: dict[str, tuple[object, ...]] = {}
    for top, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = Path(top) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", st.st_mode, st.st_uid, st.st_gid)
            elif stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", os.readlink(path))
            else:
                found[rel] = ("file", st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
    return found


def _changed(before: dict[str, tuple[object, ...]], after: dict[str, tuple[object, ...]]) -> set[str]:
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


def _allowed(rel: str, stage: str) -> bool:
    parts = Path(rel).parts
    if parts[0] == "repo":  # [publish] repo: the output the user named
        return stage == "publish"
    if parts[0] != "work":
        return False
    inside = parts[1:]
    if not inside or inside[0] in (".respin-workdir", ".lock", "manifest.json", "state"):
        return True
    if inside[0] == "ccache":  # [rebuild] ccache_dir's default: a workspace rebuild declares
        return stage == "rebuild"
    if inside[0] == "stages":
        return len(inside) == 1 or inside[1] == stage
    return False


def test_each_stage_writes_only_in_its_own_dir(tmp_path: Path, srpm: Path, gpg: tuple[Path, str]) -> None:
    current = srpm.name.startswith("kernel-6.")
    home, fpr = gpg
    symbol = "CONFIG_DEFAULT_HOSTNAME" if current else "CONFIG_LOCALVERSION"
    without = 'without = ["debug"]' if current else ""
    text = (f'[pipeline]\ntarget = "{"x86_64" if current else "i686"}"\nworkdir = "work"\n'
            f"stages = {json.dumps(STAGES)}\n\n[fetch]\nsrpm = \"{srpm}\"\n\n"
            f'[sign]\ngpg_key = "{fpr}"\ngpg_home = "{home}"\n\n'
            f'[config]\nset = {{ CONFIG_RESPIN_FEATURE_A = "y", {symbol} = "-respin" }}\n'
            # The tree's own make, which writes where it runs: in config's copy, not prep's.
            'validator = "oldconfig"\n\n'
            f'[rebuild]\n{without}\nmode = "all"\n\n'
            '[publish]\nrepo = "repo"\n')
    (tmp_path / "kernel.toml").write_text(text)
    seen = _state(tmp_path)
    for stage in STAGES:
        manifest = json.loads(respin("run", tmp_path / "kernel.toml", "--only", stage, "--json").stdout)
        assert [s["status"] for s in manifest["stages"] if s["name"] == stage] == ["ran"], stage
        now = _state(tmp_path)
        strays = sorted(p for p in _changed(seen, now) if not _allowed(p, stage))
        assert not strays, (stage, strays[:20])
        # What an earlier stage made is there as it made it: not removed, not rewritten.
        done = {("work", "stages", s) for s in STAGES[:STAGES.index(stage)]}
        earlier = [p for p in seen if Path(p).parts[:3] in done]
        assert all(now.get(p) == seen[p] for p in earlier), stage
        seen = now
    assert {p.name for p in (tmp_path / "work").iterdir()} <= ENGINE | {"ccache"}
