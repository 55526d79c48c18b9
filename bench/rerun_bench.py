"""A rerun with nothing changed: respin's no-op against redoing the recipe's rpmbuild.

Without fingerprints, the way to be sure a kernel package matches its inputs
is to run `rpmbuild -ba` again. respin checks its recorded fingerprints and
outputs instead. Both on the fixture kernel, side by side, as a ratio.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fixtures.build import build_srpm

RESPIN = Path(sys.executable).with_name("respin")


def _time(argv: list[str], cwd: Path, runs: int = 5) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, stdin=subprocess.DEVNULL, capture_output=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        srpm = build_srpm("kernel-2010", work)
        (work / "kernel.toml").write_text(
            f'[pipeline]\ntarget = "i686"\n\n[fetch]\nsrpm = "{srpm}"\n\n'
            '[config]\nset = { CONFIG_RESPIN_FEATURE_A = "y", CONFIG_RESPIN_FEATURE_B = "y" }\n')
        subprocess.run([str(RESPIN), "run", "kernel.toml"], cwd=work, check=True, capture_output=True)
        noop = _time([str(RESPIN), "run", "kernel.toml"], work)
        top = work / "_respin/kernel/stages/rebuild/rpmbuild"
        spec = top / "SPECS/kernel.spec"
        rebuild = _time(["rpmbuild", "-ba", "--nodeps", "--target", "i686", "--with", "baseonly",
                         "--define", f"_topdir {top}", str(spec)], work, runs=3)
        shutil.rmtree(work / "_respin", ignore_errors=True)
    print("| step | respin s | peer s | ratio |")
    print("|---|---|---|---|")
    print(f"| rerun with nothing changed (fixture kernel) vs `rpmbuild -ba` again | {noop:.2f} | "
          f"{rebuild:.2f} | {rebuild / noop:.1f}x faster |")
    return 0
