"""What `respin run` prints as its result: what the selected stages made."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from respin_cli import respin

from fixtures.build import build_srpm


@pytest.fixture(scope="module")
def srpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("rpmbuild") is None:
        pytest.skip("rpmbuild is not installed")
    return build_srpm("kernel-2010", tmp_path_factory.mktemp("srpm"))


def results(stdout: str) -> dict[str, str]:
    return dict(line.split(maxsplit=1) for line in stdout.splitlines())


def test_until_and_only_list_what_the_selected_stages_made(tmp_path: Path, srpm: Path) -> None:
    pf = tmp_path / "kernel.toml"
    pf.write_text(f'[pipeline]\ntarget = "i686"\nworkdir = "work"\n\n[fetch]\nsrpm = "{srpm}"\n\n'
                  '[config]\nset = { CONFIG_RESPIN_FEATURE_A = "y" }\n')
    stages = tmp_path / "work/stages"
    until = results(respin("run", pf, "--until", "diff").stdout)
    assert until == {"pristine-spec": f"{stages}/fetch/pristine/SPECS/kernel.spec",
                     "patch": f"{stages}/diff/config.patch"}
    # Up to date, the same selection shows the same result.
    assert results(respin("run", pf, "--until", "diff").stdout) == until
    only = results(respin("run", pf, "--only", "config", "--force").stdout)
    assert only == {"kconfig-edited": f"{stages}/config/edited"}
