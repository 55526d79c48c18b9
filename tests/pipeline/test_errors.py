"""Bad input a new user meets in the first hour: one line naming the input, the documented code."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from respin_cli import RESPIN, assert_one_line_error, respin

from fixtures.build import build_srpm

KERNEL_TOML = '[pipeline]\ntarget = "i686"\nworkdir = "work"\n\n[fetch]\nsrpm = "kernel.src.rpm"\n'


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


@pytest.mark.parametrize("command", [["run"], ["run", "--json"], ["status"], ["makefile"], ["repro"]])
def test_a_pipeline_file_that_is_not_utf8_is_named(tmp_path: Path, command: list[str]) -> None:
    bad = write(tmp_path / "bad.toml", b"# caf\xe9\n" + KERNEL_TOML.encode())
    proc = respin(*command, bad, check=False)
    assert_one_line_error(proc, 3, "bad.toml: not UTF-8 text (byte 0xe9 at offset 5)")
    if "--json" in command:
        assert json.loads(proc.stdout)["error"]["exit_code"] == 3
    else:
        assert proc.stdout == ""
    assert not (tmp_path / "work").exists()


@pytest.fixture(scope="module")
def srpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("rpmbuild") is None:
        pytest.skip("rpmbuild is not installed")
    return build_srpm("kernel-2010", tmp_path_factory.mktemp("srpm"))


def kernel_toml(where: Path, srpm: str, extra: str = "") -> Path:
    return write(where / "kernel.toml", KERNEL_TOML.replace('"kernel.src.rpm"', f'"{srpm}"') + extra
                 + '\n[config]\nset = { CONFIG_RESPIN_FEATURE_A = "y" }\n')


def stray_lines(stderr: str) -> list[str]:
    """stderr lines that are neither respin's own nor its progress lines."""
    return [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith(("respin:", "["))]


def test_a_truncated_srpm_is_one_line_with_librpms_words(tmp_path: Path, srpm: Path) -> None:
    trunc = write(tmp_path / "trunc.src.rpm", srpm.read_bytes()[:1000])
    proc = respin("run", kernel_toml(tmp_path, str(trunc)), "--until", "fetch", check=False)
    assert_one_line_error(proc, 4, "trunc.src.rpm: not an RPM package", "hdr blob")
    assert stray_lines(proc.stderr) == []


def test_a_directory_as_srpm_is_one_line(tmp_path: Path) -> None:
    proc = respin("run", kernel_toml(tmp_path, "."), "--until", "fetch", check=False)
    assert_one_line_error(proc, 4, f"{tmp_path}: is a directory, expected an RPM package")
    assert stray_lines(proc.stderr) == []


@pytest.mark.parametrize("url", ["ftp://example.org/kernel.src.rpm", "rsync://mirror/kernel.src.rpm"])
def test_an_unsupported_url_scheme_is_named(tmp_path: Path, url: str) -> None:
    scheme = url.split(":")[0]
    proc = respin("run", kernel_toml(tmp_path, url), check=False)
    assert_one_line_error(proc, 3, "[fetch]", f"unsupported URL scheme '{scheme}'",
                          "(path, file://, http(s)://)")
    assert not (tmp_path / "work").exists()


def test_a_string_where_an_array_belongs_says_array_of_strings(tmp_path: Path) -> None:
    pf = write(tmp_path / "kernel.toml", KERNEL_TOML + '\n[config]\nunset = "CONFIG_X"\n')
    assert_one_line_error(respin("run", pf, check=False), 3,
                          "[config]: unset: expected an array of strings, got 'CONFIG_X'")


def test_stages_out_of_order_name_both_stages(tmp_path: Path) -> None:
    pf = write(tmp_path / "kernel.toml", '[pipeline]\nstages = ["prep", "fetch"]\n\n[fetch]\n'
               'srpm = "kernel.src.rpm"\n')
    assert_one_line_error(respin("run", pf, check=False), 3, "[pipeline] stages",
                          "'prep' is listed before 'fetch', which must come first")
    assert not (tmp_path / "_respin").exists()


def test_a_stage_without_the_stage_it_needs_names_both(tmp_path: Path) -> None:
    pf = write(tmp_path / "kernel.toml", '[pipeline]\nstages = ["prep"]\n')
    assert_one_line_error(respin("run", pf, check=False), 2, "stage 'prep' needs a 'pristine-spec'",
                          "in the kernel pipeline fetch comes before prep")


@pytest.mark.slow
def test_a_file_as_work_dir_is_not_a_directory(tmp_path: Path) -> None:
    afile = write(tmp_path / "afile", "mine\n")
    pf = write(tmp_path / "kernel.toml", '[pipeline]\nstages = ["fetch"]\n\n[fetch]\nsrpm = "k.src.rpm"\n')
    for command in ("run", "status"):
        assert_one_line_error(respin(command, pf, "--workdir", afile, check=False), 2,
                              f"--workdir {afile}: not a directory")
        assert_one_line_error(respin(command, pf, "--workdir", afile / "sub", check=False), 2,
                              f"{afile} is not a directory")
    write(pf, pf.read_text().replace("[pipeline]\n", '[pipeline]\nworkdir = "afile"\n'))
    assert_one_line_error(respin("run", pf, check=False), 3, "[pipeline] workdir", "not a directory")
    assert afile.read_text() == "mine\n"


@pytest.mark.parametrize(("args", "words"), [
    (["--bogus"], "respin: error: unrecognized arguments: --bogus; see respin --help"),
    (["run", "--bogus", "x.toml"],
     "respin: error: run: unrecognized arguments: --bogus; see respin run --help"),
    (["run"], "respin: error: run: the following arguments are required: file; see respin run --help"),
    (["nosuch"], "respin: error: unknown command 'nosuch' (choose from "),
])
def test_a_bad_command_line_is_one_clean_line(args: list[str], words: str) -> None:
    proc = respin(*args, check=False)
    assert_one_line_error(proc, 2)
    assert proc.stderr.startswith(words), proc.stderr
    assert proc.stderr.count("respin") == 1 + proc.stderr.count("see respin"), proc.stderr


@pytest.mark.slow
def test_ctrl_c_during_rebuild_names_rpmbuild_and_the_stage(tmp_path: Path, srpm: Path) -> None:
    pf = kernel_toml(tmp_path, str(srpm), extra='\n[rebuild]\nmode = "binary"\n')
    respin("run", pf, "--until", "inject")
    log = tmp_path / "work/stages/rebuild/rebuild.log"
    proc = subprocess.Popen([str(RESPIN), "run", str(pf)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        # rpmbuild has started once it writes its log: interrupt it mid-build.
        while not (log.exists() and log.stat().st_size > 0) and proc.poll() is None:
            assert time.monotonic() < deadline, "rpmbuild never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert_one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr), 130,
                          "stage 'rebuild'", "interrupted while running rpmbuild -bb of kernel.spec")
    assert "unshare" not in stderr


def test_status_names_a_missing_srpm_and_fails(tmp_path: Path) -> None:
    pf = kernel_toml(tmp_path, "gone.src.rpm")
    proc = respin("status", pf, check=False)
    assert_one_line_error(proc, 4, f"{tmp_path}/gone.src.rpm: no such file", "stage 'fetch'")
    assert proc.stdout.splitlines()[0].split() == ["fetch", "input", "missing:", f"{tmp_path}/gone.src.rpm"]
    rows = json.loads(respin("status", pf, "--json", check=False).stdout)
    assert rows[0]["missing"] == [f"{tmp_path}/gone.src.rpm"] and not rows[0]["up_to_date"]


@pytest.mark.slow
def test_a_failed_run_json_prints_the_manifest_with_the_failed_stage_and_error(tmp_path: Path) -> None:
    pf = kernel_toml(tmp_path, "gone.src.rpm")
    proc = respin("run", pf, "--json", check=False)
    assert_one_line_error(proc, 4, "gone.src.rpm: no such file")
    manifest = json.loads(proc.stdout)
    assert manifest["error"]["stage"] == "fetch" and manifest["error"]["exit_code"] == 4
    assert "gone.src.rpm: no such file" in manifest["error"]["message"]
    assert [s["status"] for s in manifest["stages"]] == ["failed"] + ["not reached"] * 6
    # No stage began: the work dir this invocation made is gone again.
    assert not (tmp_path / "work").exists()
    # Failing before any stage runs (a bad selection) is still one JSON document with the error.
    early = respin("run", pf, "--json", "--only", "nosuch", check=False)
    assert_one_line_error(early, 2, "--only nosuch")
    assert json.loads(early.stdout)["error"] == {"stage": None, "exit_code": 2,
                                                 "message": early.stderr.split("error: ", 1)[1].strip()}


def in_small_fs(tmp_path: Path, size: str, script: str) -> dict[str, str]:
    """Run the shell `script` in a private mount namespace where `fs/` (under tmp_path) is a
    tmpfs of `size`; `$R` is respin. Each `step NAME ARGS...` runs respin and records its
    stderr, exit status and the temp files left in fs/ (read back as NAME.err, .rc, .left)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("a small full file system needs root and unshare (a tmpfs in a mount namespace)")
    (tmp_path / "fs").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    prelude = (f'set -e\nmount -t tmpfs -o size={size} respin-test "{tmp_path}/fs"\nR="{RESPIN}"\n'
               f'step() {{ name=$1; shift; rc=0; "$R" "$@" 2> "{out}/$name.err" || rc=$?; '
               f'echo $rc > "{out}/$name.rc"; '
               f"find \"{tmp_path}/fs\" -name '.*.tmp' -o -name '.*.old.*' > \"{out}/$name.left\"; }}\n")
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", prelude + script],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return {p.name: p.read_text() for p in out.iterdir()}


@pytest.mark.root
def test_a_full_disk_at_fetch_names_stage_path_and_no_space(tmp_path: Path, srpm: Path) -> None:
    pf = kernel_toml(tmp_path, str(srpm)).read_text().replace('workdir = "work"', 'workdir = "fs/work"')
    write(tmp_path / "kernel.toml", pf)
    got = in_small_fs(tmp_path, "40k", "step fetch run kernel.toml --until fetch\n"
                      f'test ! -e fs/work/state/fetch.json && test ! -e fs/work/stages/fetch/pristine '
                      f'&& touch "{tmp_path}/out/clean"\n')
    error = "".join(ln for ln in got["fetch.err"].splitlines() if ln.startswith("respin: error:"))
    assert got["fetch.rc"].strip() == "4", got["fetch.err"]
    # The SRPM's copy or its unpacking fills the disk: either is named, with the stage.
    assert "stage 'fetch'" in error and "fs/work/stages/fetch/" in error, error
    assert "no space left on device" in error, error
    assert got["fetch.left"] == "" and "clean" in got


@pytest.mark.root
def test_a_full_disk_at_prep_names_stage_path_and_no_space(tmp_path: Path, srpm: Path) -> None:
    pf = kernel_toml(tmp_path, str(srpm)).read_text().replace('workdir = "work"', 'workdir = "fs/work"')
    write(tmp_path / "kernel.toml", pf)
    # Fetch fits; then the disk fills up (all of it, then all but a few blocks: rpmbuild's tar).
    got = in_small_fs(tmp_path, "2m", "step fetch run kernel.toml --until fetch\n"
                      "dd if=/dev/zero of=fs/filler bs=4k 2>/dev/null || true\n"
                      "step full run kernel.toml --until prep\n"
                      "rm fs/filler\n"
                      "dd if=/dev/zero of=fs/filler bs=4k count=$(( $(stat -f -c %a fs) - 16 )) 2>/dev/null\n"
                      "step tar run kernel.toml --until prep\n"
                      f'test ! -e fs/work/state/prep.json && test -e fs/work/state/fetch.json '
                      f'&& test ! -e fs/work/stages/prep/snapshot && touch "{tmp_path}/out/clean"\n')
    assert got["fetch.rc"].strip() == "0", got["fetch.err"]
    for step, code in (("full", "4"), ("tar", "5")):
        errors = [ln for ln in got[f"{step}.err"].splitlines() if ln.startswith("respin: error:")]
        assert got[f"{step}.rc"].strip() == code and len(errors) == 1, got[f"{step}.err"]
        assert "stage 'prep'" in errors[0] and "no space left on device" in errors[0].lower(), errors
        assert str(tmp_path / "fs/work") in errors[0], errors
        assert got[f"{step}.left"] == ""
    assert "clean" in got


def builder_gid() -> int:
    from respin.stages.kernel.lib.rpmpkg import builder

    ident = builder()
    assert ident is not None
    return ident[1]


@pytest.mark.slow
@pytest.mark.parametrize("mask", [0o022, 0o077], ids=["umask022", "umask077"])
def test_work_dir_directories_follow_the_umask(tmp_path: Path, srpm: Path, mask: int) -> None:
    pf = kernel_toml(tmp_path, str(srpm))
    proc = subprocess.run(["sh", "-c", f'umask {mask:03o} && exec "$0" "$@"', str(RESPIN), "run", str(pf),
                           "--until", "config"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    work = tmp_path / "work"
    for rel in ("stages/fetch/pristine", "stages/prep/snapshot", "stages/config/edited"):
        assert (work / rel).stat().st_mode & 0o777 == 0o777 & ~mask, (rel, oct((work / rel).stat().st_mode))
    # What the build reads and others may not is opened to the builder's group alone when
    # respin runs as root; what every user may read is left as it is.
    closed = mask & 0o005 and os.geteuid() == 0
    shared = (0o777 & ~mask) | (0o050 if closed else 0)
    for rel in ("stages/prep/rpmbuild", "stages/prep/rpmbuild/SOURCES", "stages/prep/rpmbuild/SPECS"):
        st = (work / rel).stat()
        assert st.st_mode & 0o777 == shared, (rel, oct(st.st_mode))
        assert st.st_gid == (builder_gid() if closed else os.getgid()), (rel, st.st_gid)
    # fetch's copy, which SOURCES hard-links, is fetch's: no other stage changes it.
    assert {p.stat().st_gid for p in (work / "stages/fetch/pristine").rglob("*")} == {os.getgid()}


# One line stays one line: a value holding a newline, or megabytes long, is escaped and cut.
FETCH_ONLY = '[pipeline]\nstages = ["fetch"]\nworkdir = "work"\n\n[fetch]\n'


def test_a_newline_in_a_value_stays_escaped_on_the_error_line(tmp_path: Path) -> None:
    pf = write(tmp_path / "kernel.toml", FETCH_ONLY + 'srpm = "gone\\nrespin: error: forged"\n')
    proc = respin("run", pf, check=False)
    assert_one_line_error(proc, 4, "gone\\nrespin: error: forged: no such file")
    assert "forged" not in proc.stderr.splitlines()[-1].partition("\\n")[0]


def test_a_newline_in_a_logged_value_stays_on_the_log_line(tmp_path: Path) -> None:
    pf = write(tmp_path / "kernel.toml", FETCH_ONLY + 'srpm = "http://127.0.0.1:9/k\\nrespin: forged"\n')
    proc = respin("run", pf, check=False)
    assert_one_line_error(proc, 4, "http://127.0.0.1:9/k\\nrespin: forged", "download failed")
    assert "respin: fetch: downloading http://127.0.0.1:9/k\\nrespin: forged\n" in proc.stderr
    assert not [ln for ln in proc.stderr.splitlines() if ln.startswith("respin: forged")]


def test_a_huge_value_is_cut_on_the_error_line(tmp_path: Path) -> None:
    pf = write(tmp_path / "kernel.toml", FETCH_ONLY + f'srpm = "x"\nsha256 = "{"A" * 3_000_000}"\n')
    proc = respin("run", pf, check=False)
    assert_one_line_error(proc, 3, "[fetch]: sha256: 'AAAA", "characters cut...]AAAA", "not 64 hex digits")
    assert len(proc.stderr) < 1000, len(proc.stderr)


def test_a_value_nested_thousands_deep_is_a_bad_pipeline_file(tmp_path: Path) -> None:
    pf = write(tmp_path / "kernel.toml", FETCH_ONLY + f'srpm = {"[" * 5000}{"]" * 5000}\n')
    for command in ("run", "status"):
        assert_one_line_error(respin(command, pf, check=False), 3, f"{pf}: ", "nested too deeply")
    assert not (tmp_path / "work").exists()


# A damaged SRPM is refused before rpm -i, by its own digests; the pin holds the bytes used.
DAMAGE = {
    "cut-short": lambda b: b[:len(b) - 4000],
    "flipped-payload-byte": lambda b: b[:-3000] + bytes([b[-3000] ^ 0xFF]) + b[-2999:],
    "trailing-garbage": lambda b: b + b"garbage after the payload\n",
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_srpm_is_refused_naming_the_failed_digest(tmp_path: Path, srpm: Path, case: str) -> None:
    bad = write(tmp_path / "damaged.src.rpm", DAMAGE[case](srpm.read_bytes()))
    proc = respin("run", kernel_toml(tmp_path, str(bad)), "--until", "fetch", check=False)
    assert_one_line_error(proc, 4, f"{bad}: damaged package", "Payload SHA256", "digest does not match")
    assert not (tmp_path / "work/stages/fetch/pristine").exists()


def test_a_pinned_srpm_swapped_by_a_racing_rename_is_never_installed(tmp_path: Path, srpm: Path) -> None:
    import hashlib
    import threading

    pin = hashlib.sha256(srpm.read_bytes()).hexdigest()
    other = build_srpm("kernel-current", tmp_path / "other")
    given = tmp_path / "kernel.src.rpm"
    pf = kernel_toml(tmp_path, str(given), extra=f'sha256 = "{pin}"\n')
    stop = threading.Event()

    def swap() -> None:
        # A second user alternates the two packages under the pinned name, by rename.
        n = 0
        while not stop.is_set():
            n += 1
            tmp = tmp_path / f".swap{n}"
            shutil.copy(other if n % 2 else srpm, tmp)
            os.replace(tmp, given)

    shutil.copy(srpm, given)
    racer = threading.Thread(target=swap, daemon=True)
    racer.start()
    try:
        outcomes = []
        for _ in range(6):
            proc = respin("run", pf, "--until", "fetch", "--force", check=False)
            outcomes.append(proc.returncode)
            if proc.returncode == 0:
                spec = (tmp_path / "work/stages/fetch/pristine/SPECS/kernel.spec").read_text()
                assert "2.6.27" in spec, "the other package was installed under the pin"
            else:
                assert_one_line_error(proc, 4, f"{given}: sha256 is", "pipeline pins")
    finally:
        stop.set()
        racer.join()
    assert set(outcomes) <= {0, 4}, outcomes


def test_an_empty_srpm_value_is_named_empty(tmp_path: Path) -> None:
    proc = respin("run", kernel_toml(tmp_path, ""), check=False)
    assert_one_line_error(proc, 3, "[fetch]", "srpm: empty value")
    assert "is a directory" not in proc.stderr


@pytest.mark.root
def test_a_read_only_destination_is_named_not_its_temp_file(tmp_path: Path) -> None:
    kernel_toml(tmp_path, "kernel.src.rpm")
    got = in_small_fs(tmp_path, "1m", f'mount -o remount,ro "{tmp_path}/fs"\n'
                      f'step mk makefile kernel.toml -o "{tmp_path}/fs/respin.mk"\n')
    assert got["mk.rc"].strip() == "4", got["mk.err"]
    assert got["mk.err"] == f"respin: error: {tmp_path}/fs/respin.mk: read-only file system\n"


@pytest.mark.root
def test_a_full_disk_while_recording_a_stage_names_the_stage(tmp_path: Path) -> None:
    """The input-hash cache is saved with each stage's record: when it is what no longer fits,
    the error names the stage being recorded, not only state/inputs.json."""
    # Two inputs of long paths: the cache of both takes two pages, of one, one.
    first, second = (write(tmp_path.joinpath(*[name * 240] * 14, "in.txt"), name) for name in "ab")
    pf = write(tmp_path / "p.toml", '[pipeline]\nworkdir = "fs/work"\n\n[example-write]\n'
               f'source = "{first}"\n')
    got = in_small_fs(tmp_path, "1m", f"step first run {pf}\n"
                      f"sed -i 's|{first}|{second}|' {pf}\n"
                      "dd if=/dev/zero of=fs/filler bs=4k count=$(( $(stat -f -c %a fs) - 1 )) 2>/dev/null\n"
                      f"step full run {pf}\n")
    assert got["first.rc"].strip() == "0", got["first.err"]
    errors = [ln for ln in got["full.err"].splitlines() if ln.startswith("respin: error:")]
    assert got["full.rc"].strip() == "4" and len(errors) == 1, got["full.err"]
    assert "stage 'example-write'" in errors[0] and "state/inputs.json" in errors[0], errors
    assert "no space left on device" in errors[0].lower() and got["full.left"] == ""


@pytest.mark.parametrize("target", ["", "x86_64 ;ls", "x86_64\n", "$(id)"])
def test_a_target_that_is_no_architecture_name_is_refused(tmp_path: Path, target: str) -> None:
    pf = kernel_toml(tmp_path, "kernel.src.rpm")
    for command in ("run", "status"):
        assert_one_line_error(respin(command, pf, "--target", target, check=False), 2,
                              f"--target: {target!r} is not an architecture name")
    write(pf, pf.read_text().replace('target = "i686"', f"target = {json.dumps(target)}"))
    assert_one_line_error(respin("run", pf, check=False), 3, f"{pf} [pipeline]: target: {target!r}",
                          "not an architecture name")
    assert not (tmp_path / "work").exists()


def test_a_stage_listed_twice_is_named(tmp_path: Path) -> None:
    pf = write(tmp_path / "kernel.toml", '[pipeline]\nstages = ["fetch", "prep", "fetch"]\n\n[fetch]\n'
               'srpm = "kernel.src.rpm"\n')
    assert_one_line_error(respin("run", pf, check=False), 3, "[pipeline] stages: 'fetch' is listed twice")


def test_a_url_as_publish_repo_is_refused_not_made_a_directory(tmp_path: Path) -> None:
    pf = kernel_toml(tmp_path, "kernel.src.rpm",
                     extra='\n[publish]\nrepo = "https://example.org/repo"\n')
    write(pf, pf.read_text().replace("[pipeline]\n", '[pipeline]\nstages = ["fetch", "prep", "config", '
                                     '"diff", "inject", "rebuild", "publish"]\n'))
    assert_one_line_error(respin("run", pf, check=False), 3, "[publish]",
                          "repo: 'https://example.org/repo' is a URL")
    assert not (tmp_path / "https:").exists() and not (tmp_path / "work").exists()


def test_one_report_for_every_error() -> None:
    from respin.pipeline.errors import InputError, Interrupted, report

    assert report(InputError("x.rpm: bad")) == ("x.rpm: bad", 4, False)
    assert report(KeyboardInterrupt()) == ("interrupted", Interrupted.exit_code, False)
    assert report(PermissionError(13, "Permission denied", "/w/f")).line() == \
        "respin: error: /w/f: permission denied"
    bug = report(RuntimeError("boom\nline two"))
    assert bug.line() == ("respin: internal error: RuntimeError: boom\\nline two "
                          "(rerun with --debug for details)")
    assert bug.exit_code == 1 and bug.to_json("s") == {"stage": "s", "message": bug.message, "exit_code": 1}


@pytest.mark.parametrize("table", ['fail = true', 'source = "missing.txt"'])
def test_the_cli_line_and_the_manifest_say_the_same(tmp_path: Path, table: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from respin.pipeline.cli import main

    pf = write(tmp_path / "p.toml", f"[example-write]\n{table}\n")
    code = main(["-q", "run", str(pf), "--json"])
    out, err = capsys.readouterr()
    manifest = json.loads(out)
    lines = err.splitlines()
    assert manifest["error"]["exit_code"] == code != 0
    assert manifest["error"]["stage"] == "example-write"
    assert len(lines) == 1 and manifest["error"]["message"] in lines[0], (lines, manifest["error"])
