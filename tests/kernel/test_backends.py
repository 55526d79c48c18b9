"""Build backends of the rebuild stage beside local rpmbuild, and the dist-git export.

mock and a koji hub cannot run here. mock is replaced by a fake `mock` executable on PATH
that records its command line and does what `mock --rebuild` does with it (rpmbuild
--rebuild with the same target, switches and macros; results and logs in --resultdir).
The koji path runs the real koji client library against a local stand-in hub: an XML-RPC
server over TLS on 127.0.0.1 (stdlib, in a thread) answering the calls the client makes
(sslLogin with a client certificate from the koji config, checkUpload, rawUpload, build,
getTaskInfo, getTaskChildren, listTaskOutput, downloadTaskOutput, getTaskResult, logout);
its "builder" is rpmbuild --rebuild. The certificates are made with openssl for the test.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import xmlrpc.client
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from respin_cli import assert_one_line_error, respin

from fixtures.build import build_srpm
from respin.pipeline.stage import Artifact, Context
from respin.stages.kernel.distgit import DistGitStage
from respin.stages.kernel.lib.backends import mock_argv
from respin.stages.kernel.lib.rpmpkg import payload_files, read_package

koji = pytest.importorskip("koji", reason="the koji client library is not installed")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpmbuild is not installed")]
CONFIG = 'set = { CONFIG_RESPIN_FEATURE_A = "y", CONFIG_LOCALVERSION = "-backend" }\n'


@pytest.fixture(scope="module")
def srpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_srpm("kernel-2010", tmp_path_factory.mktemp("srpm"))


def pipeline_file(where: Path, srpm: Path, rebuild: str) -> Path:
    path = where / "kernel.toml"
    path.write_text(f'[pipeline]\ntarget = "i686"\nworkdir = "work"\n\n[fetch]\nsrpm = "{srpm}"\n\n'
                    f"[config]\n{CONFIG}\n[rebuild]\n{rebuild}")
    return path


def boot_config(rpm_path: Path) -> str:
    (config,) = dict(payload_files(rpm_path, re.compile(r"/boot/config-"))).values()
    return config.decode()


def rpmbuild_rebuild(srpm: Path, outdir: Path, target: str | None, args: list[str]) -> list[Path]:
    """What a builder does with an SRPM: rpmbuild --rebuild in a topdir of its own."""
    top = Path(tempfile.mkdtemp(prefix="builder-"))
    argv = ["rpmbuild", "--rebuild", "--nodeps", "--define", f"_topdir {top}", *args]
    if target:
        argv.append(f"--target={target}")
    proc = subprocess.run([*argv, str(srpm)], capture_output=True, text=True, check=False)
    (outdir / "build.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"rpmbuild --rebuild failed: {proc.stderr[-500:]}")
    out = []
    for p in sorted(top.glob("RPMS/*/*.rpm")):
        out.append(Path(shutil.move(str(p), outdir / p.name)))
    shutil.rmtree(top, ignore_errors=True)
    return out


# --- mock --------------------------------------------------------------------------

FAKE_MOCK = r'''#!{python}
"""A stand-in for mock: records argv, then does what `mock --rebuild` would."""
import json, os, shutil, subprocess, sys, tempfile
args = sys.argv[1:]
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.jsonl"), "a") as fh:
    fh.write(json.dumps(args) + "\n")
srpm = args[args.index("--rebuild") + 1]
resultdir = args[args.index("--resultdir") + 1]
passed = []
i = 0
while i < len(args):
    a = args[i]
    if a in ("--with", "--without", "--define"):
        passed += [a, args[i + 1]]; i += 2; continue
    if a.startswith("--target="):
        passed.append(a)
    i += 1
top = tempfile.mkdtemp(prefix="fake-mock-")
proc = subprocess.run(["rpmbuild", "--rebuild", "--nodeps", "--define", "_topdir " + top, *passed, srpm],
                      capture_output=True, text=True)
open(os.path.join(resultdir, "build.log"), "w").write(proc.stdout + proc.stderr)
open(os.path.join(resultdir, "root.log"), "w").write("fake root\n")
if proc.returncode:
    sys.stderr.write("ERROR: Exception(" + srpm + ") Config(default) build failed\n")
    sys.exit(30)
shutil.copy(srpm, resultdir)
for sub, _, files in os.walk(os.path.join(top, "RPMS")):
    for f in files:
        shutil.move(os.path.join(sub, f), os.path.join(resultdir, f))
shutil.rmtree(top)
'''


@pytest.fixture
def fake_mock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "mock"
    script.write_text(FAKE_MOCK.replace("{python}", sys.executable))
    script.chmod(0o755)
    # respin runs commands with a clean environment: PATH is passed on, the rest is not,
    # so the fake records its calls beside itself.
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return bindir / "calls.jsonl"


def test_mock_backend_rebuild_command_line_and_results_fake_mock_binary(
        tmp_path: Path, srpm: Path, fake_mock: Path) -> None:
    pf = pipeline_file(tmp_path, srpm, 'backend = "mock"\nmock_config = "fedora-40-i386"\n'
                       'mock_args = ["--isolation=simple"]\nwithout = ["debug"]\n')
    manifest = json.loads(respin("run", pf, "--json").stdout)
    assert [s["status"] for s in manifest["stages"]] == ["ran"] * 7
    (call,) = [json.loads(ln) for ln in fake_mock.read_text().splitlines()]
    srpms = [a for a in manifest["artifacts"] if a["kind"] == "srpm"]
    (built_srpm,) = srpms
    resultdir = tmp_path / "work/stages/rebuild/mock-result"
    # The exact command line: config, the locally built (reproducible) SRPM, result dir,
    # the pipeline's target and switches, rpm's reproducibility macros, the extra switches.
    local_srpm = next((tmp_path / "work/stages/rebuild/rpmbuild/SRPMS").glob("*.src.rpm"))
    assert call == mock_argv(local_srpm, resultdir, config="fedora-40-i386", target="i686",
                             with_=["baseonly"], without=["debug"], defines={},
                             extra=["--isolation=simple"])[1:]
    assert call[:6] == ["-r", "fedora-40-i386", "--rebuild", str(local_srpm), "--resultdir", str(resultdir)]
    assert "--target=i686" in call and call[call.index("--with"):][:2] == ["--with", "baseonly"]
    assert "use_source_date_epoch_as_buildtime 1" in call and "_buildhost respin.build" in call
    # Results collected from the result dir: the SRPM, the kernel package, mock's logs.
    assert Path(built_srpm["path"]).parent == resultdir
    (rpm,) = [Path(a["path"]) for a in manifest["artifacts"] if a["kind"] == "rpm"]
    assert rpm.parent == resultdir and rpm.name.endswith(".i686.rpm")
    assert 'CONFIG_LOCALVERSION="-backend"' in boot_config(rpm)
    logs = {Path(a["path"]).name for a in manifest["artifacts"] if a["kind"] == "log"}
    assert {"build.log", "root.log"} <= logs


def test_mock_backend_failure_is_one_line_error_fake_mock_binary(
        tmp_path: Path, srpm: Path, fake_mock: Path) -> None:
    pf = pipeline_file(tmp_path, srpm, 'backend = "mock"\ndefine = { _binary_payload = "w99.nosuchio" }\n')
    proc = respin("run", pf, check=False)
    assert_one_line_error(proc, 5, "mock --rebuild of kernel-", "exit status 30")


def test_mock_backend_says_it_builds_without_the_compile_cache_fake_mock_binary(
        tmp_path: Path, srpm: Path, fake_mock: Path) -> None:
    pf = pipeline_file(tmp_path, srpm, 'backend = "mock"\nccache = true\nccache_dir = "cache"\n')
    proc = respin("run", pf, "--json")
    said = [ln for ln in proc.stderr.splitlines() if "ccache" in ln]
    assert len(said) == 1 and "ccache applies to the rpmbuild backend only" in said[0], proc.stderr
    assert "the mock build runs without it" in said[0]
    manifest = json.loads(proc.stdout)
    assert "ccache" not in manifest["tools"]
    assert not any("ccache" in a.get("meta", {}) for a in manifest["artifacts"])
    assert not (tmp_path / "cache").exists() and not (tmp_path / "work/ccache").exists()


# --- koji --------------------------------------------------------------------------


@dataclass
class StandinHub:
    """Just enough of a koji hub for the client's upload, build, wait and download calls."""

    workdir: Path
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    tasks: dict[int, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[int, Path] = field(default_factory=dict)
    polls: int = 0
    fail_build: bool = False
    lookaside: Path | None = None
    peer: dict[str, Any] | None = None  # the TLS client certificate of the current request

    # XML-RPC methods ------------------------------------------------------------
    def sslLogin(self, proxyuser: Any = None, proxyauthtype: Any = None, renew: Any = None,
                 exclusive: Any = None) -> dict[str, Any]:
        subject = dict(x[0] for x in (self.peer or {}).get("subject", ()))
        if subject.get("commonName") != "tester":
            raise xmlrpc.client.Fault(1000, "koji.AuthError: no client certificate")
        return {"session-id": 7, "session-key": "standin-key", "header-auth": True}

    def logout(self, session_id: Any = None) -> None:
        return None

    def getKojiVersion(self) -> str:
        return "1.36.1"

    def checkUpload(self, path: str, name: str, verify: Any = None, volume: Any = None) -> Any:
        data = self.uploads.get(f"{path}/{name}")
        if data is None:
            return None
        return {"size": len(data), "hexdigest": koji.util.adler32_constructor(bytes(data)).hexdigest()}

    def build(self, src: str, target: str, opts: dict[str, Any], priority: Any = None,
              channel: Any = None) -> int:
        parent, child = 100 + len(self.tasks), 101 + len(self.tasks)
        self.tasks[parent] = {"id": parent, "method": "build", "state": 1, "children": [child]}
        self.tasks[child] = {"id": child, "method": "buildArch", "state": 1, "children": []}
        out = self.workdir / f"task-{child}"
        out.mkdir(parents=True)
        self.outputs[child] = out
        self.outputs[parent] = self.workdir / f"task-{parent}"
        self.outputs[parent].mkdir()
        try:
            if self.fail_build:
                raise RuntimeError("BuildError: error building package (arch i686)")
            srpm = self._source(src, out)
            rpmbuild_rebuild(srpm, out, opts.get("arch_override"), ["--with", "baseonly"])
            shutil.copy(srpm, out / srpm.name)
            self.tasks[parent]["result"] = None
            state = 2  # CLOSED
        except RuntimeError as exc:
            self.tasks[parent]["result"] = str(exc)
            state = 5  # FAILED
        self.tasks[parent]["final"] = state
        self.tasks[child]["final"] = state
        return parent

    def _source(self, src: str, out: Path) -> Path:
        if src.startswith("git+"):
            url, _, commit = src[4:].partition("#")
            checkout = self.workdir / "scm"
            subprocess.run(["git", "clone", "-q", url, str(checkout)], check=True, capture_output=True)
            subprocess.run(["git", "-C", str(checkout), "checkout", "-q", commit], check=True,
                           capture_output=True)
            assert self.lookaside is not None
            for line in (checkout / "sources").read_text().splitlines():
                name = line.split("(", 1)[1].split(")", 1)[0]
                shutil.copy(self.lookaside / name, checkout / name)
            (spec,) = checkout.glob("*.spec")
            top = self.workdir / "srpm-top"
            subprocess.run(["rpmbuild", "-bs", "--nodeps", "--define", f"_topdir {top}", "--define",
                            f"_sourcedir {checkout}", str(spec)], check=True, capture_output=True)
            return next((top / "SRPMS").glob("*.src.rpm"))
        data = self.uploads[src]
        path = self.workdir / Path(src).name
        path.write_bytes(bytes(data))
        return path

    def getTaskInfo(self, task_id: int, request: Any = None, strict: Any = None) -> Any:
        task = self.tasks.get(task_id)
        if task is None:
            return None
        self.polls += 1
        if self.polls >= 2:  # OPEN on the first poll: the client has to wait
            task["state"] = task["final"]
        return {"id": task["id"], "method": task["method"], "state": task["state"]}

    def getTaskChildren(self, task_id: int, request: Any = None, strict: Any = None) -> list[Any]:
        return [{"id": c, "method": self.tasks[c]["method"], "state": self.tasks[c]["state"]}
                for c in self.tasks[task_id]["children"]]

    def listTaskOutput(self, task_id: int, stat: Any = None, all_volumes: Any = None,
                       strict: Any = None) -> list[str]:
        return sorted(p.name for p in self.outputs[task_id].iterdir())

    def downloadTaskOutput(self, task_id: int, name: str, offset: int = 0, size: int = -1,
                           volume: Any = None) -> str:
        data = (self.outputs[task_id] / name).read_bytes()
        chunk = data[offset:] if size < 0 else data[offset:offset + size]
        return base64.b64encode(chunk).decode()

    def getTaskResult(self, task_id: int, raise_fault: Any = True) -> Any:
        result = self.tasks[task_id].get("result")
        if result:
            raise xmlrpc.client.Fault(1000, f"koji.BuildError: {result}")
        return result

    # plumbing --------------------------------------------------------------------
    def dispatch(self, method: str, params: tuple[Any, ...]) -> Any:
        args, kwargs = list(params), {}
        if args and isinstance(args[-1], dict) and args[-1].get("__starstar"):
            kwargs = {k: v for k, v in args.pop().items() if k != "__starstar"}
        self.calls.append((method, tuple(args), kwargs))
        func = getattr(self, method, None)
        if func is None or method.startswith("_"):
            raise xmlrpc.client.Fault(1000, f"koji.GenericError: Invalid method: {method}")
        return func(*args, **kwargs)

    def raw_upload(self, query: dict[str, str], body: bytes) -> Any:
        key = f"{query['filepath']}/{query['filename']}"
        self.calls.append(("rawUpload", (key, int(query["offset"]), len(body)), {}))
        buf = self.uploads.setdefault(key, bytearray())
        offset = int(query["offset"])
        buf[offset:offset + len(body)] = body
        return {"size": len(body), "hexdigest": koji.util.adler32_constructor(body).hexdigest()}


def _handler(hub: StandinHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        rpc_paths = ("/kojihub", "/kojihub/ssllogin")

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if url.path not in self.rpc_paths:
                self.send_error(404)
                return
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            query = dict(urllib.parse.parse_qsl(url.query))
            hub.peer = self.connection.getpeercert()  # type: ignore[attr-defined]
            try:
                if "filename" in query:  # rawUpload: the chunk is the body, the rest in the query
                    reply = xmlrpc.client.dumps((hub.raw_upload(query, body),), methodresponse=True,
                                                allow_none=True)
                else:
                    params, method = xmlrpc.client.loads(body, use_builtin_types=True)
                    assert method is not None
                    reply = xmlrpc.client.dumps((hub.dispatch(method, params),), methodresponse=True,
                                                allow_none=True)
            except xmlrpc.client.Fault as fault:
                reply = xmlrpc.client.dumps(fault, methodresponse=True, allow_none=True)
            data = reply.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, the hub's certificate for 127.0.0.1, the user's client certificate (cert and key
    in one file, as koji's client.crt), and a client certificate from another CA."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the stand-in hub's certificates")
    d = tmp_path_factory.mktemp("certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "otherca"):
        _openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2",
                 "-subj", f"/CN=standin {ca}", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, ca, subject in (("hub", "ca", "/CN=127.0.0.1"), ("client", "ca", "/CN=tester"),
                              ("stranger", "otherca", "/CN=tester")):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext", cwd=d)
        (d / f"{name}.pem").write_text((d / f"{name}.crt").read_text() + (d / f"{name}.key").read_text())
    return d


@pytest.fixture
def hub(tmp_path: Path, certs: Path) -> Iterator[tuple[StandinHub, Path]]:
    """The stand-in hub on 127.0.0.1 (TLS, client certificates of our CA), and a koji config
    naming it, as a user's ~/.koji/config would; stopped after the test."""
    state = StandinHub(tmp_path / "hub")
    state.workdir.mkdir()
    server = HTTPServer(("127.0.0.1", 0), _handler(state))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certs / "hub.crt", certs / "hub.key")
    tls.load_verify_locations(certs / "ca.crt")
    tls.verify_mode = ssl.CERT_OPTIONAL
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.timeout = 1
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    port = server.server_address[1]
    config = tmp_path / "koji.conf"
    config.write_text(f"[standin]\nserver = https://127.0.0.1:{port}/kojihub\n"
                      f"topurl = https://127.0.0.1:{port}/kojifiles\nauthtype = ssl\n"
                      f"cert = {certs / 'client.pem'}\nserverca = {certs / 'ca.crt'}\n"
                      "max_retries = 1\nretry_interval = 0\nanon_retry = false\n")
    try:
        yield state, config
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


KOJI_REBUILD = ('backend = "koji"\nkoji_profile = "standin"\nkoji_config = "koji.conf"\n'
                'koji_target = "f40-candidate"\nkoji_poll = 0.05\nkoji_timeout = 60\n')


def test_koji_backend_scratch_build_upload_wait_download_against_local_standin_hub(
        tmp_path: Path, srpm: Path, hub: tuple[StandinHub, Path]) -> None:
    state, _ = hub
    pf = pipeline_file(tmp_path, srpm, KOJI_REBUILD)
    manifest = json.loads(respin("run", pf, "--json").stdout)
    assert [s["status"] for s in manifest["stages"]] == ["ran"] * 7
    methods = [c[0] for c in state.calls]
    assert methods[0] == "sslLogin" and methods[-1] == "logout"
    assert "rawUpload" in methods and methods.index("rawUpload") < methods.index("build")
    (build,) = [c for c in state.calls if c[0] == "build"]
    source, target, opts = build[1]
    local_srpm = next((tmp_path / "work/stages/rebuild/rpmbuild/SRPMS").glob("*.src.rpm"))
    assert source.endswith(f"/{local_srpm.name}") and source.startswith("respin/")
    assert target == "f40-candidate" and opts == {"scratch": True, "arch_override": "i686"}
    assert bytes(state.uploads[source]) == local_srpm.read_bytes()
    assert [c[0] for c in state.calls].count("getTaskInfo") >= 2  # it waited
    # Downloaded through downloadTaskOutput, verified by the verify stage like a local build.
    (rpm,) = [Path(a["path"]) for a in manifest["artifacts"] if a["kind"] == "rpm"]
    assert rpm.parent == tmp_path / "work/stages/rebuild/koji-result"
    assert read_package(rpm).release.endswith(".respin")
    assert 'CONFIG_LOCALVERSION="-backend"' in boot_config(rpm)
    assert any(Path(a["path"]).name == "101-build.log" for a in manifest["artifacts"] if a["kind"] == "log")


def test_koji_backend_failed_task_is_one_line_error_against_local_standin_hub(
        tmp_path: Path, srpm: Path, hub: tuple[StandinHub, Path]) -> None:
    state, _ = hub
    state.fail_build = True
    pf = pipeline_file(tmp_path, srpm, KOJI_REBUILD + "koji_scratch = false\n")
    proc = respin("run", pf, check=False)
    assert_one_line_error(proc, 5, "koji task 100", "FAILED", "error building package")
    (build,) = [c for c in state.calls if c[0] == "build"]
    assert build[1][2] == {"scratch": False}


def test_koji_backend_certificate_of_another_ca_against_local_standin_hub(
        tmp_path: Path, srpm: Path, hub: tuple[StandinHub, Path], certs: Path) -> None:
    state, config = hub
    config.write_text(config.read_text().replace("client.pem", "stranger.pem"))
    proc = respin("run", pipeline_file(tmp_path, srpm, KOJI_REBUILD), check=False)
    assert_one_line_error(proc, 5, "login failed", "ssl auth failed")
    assert "build" not in [c[0] for c in state.calls]


def test_koji_backend_unknown_profile_is_config_error(tmp_path: Path, srpm: Path,
                                                      hub: tuple[StandinHub, Path]) -> None:
    rebuild = KOJI_REBUILD.replace('koji_profile = "standin"', 'koji_profile = "nosuch"')
    proc = respin("run", pipeline_file(tmp_path, srpm, rebuild), check=False)
    assert_one_line_error(proc, 3, "koji profile 'nosuch'")


def test_koji_backend_needs_a_target(tmp_path: Path, srpm: Path) -> None:
    proc = respin("run", pipeline_file(tmp_path, srpm, 'backend = "koji"\n'), check=False)
    assert_one_line_error(proc, 3, "koji_target")


# --- dist-git export, built on koji from SCM ------------------------------------------


def _context_from(manifest: dict[str, Any], tmp_path: Path) -> Context:
    produced: dict[str, list[Artifact]] = {}
    for art in manifest["artifacts"]:
        produced.setdefault(art["stage"], []).append(Artifact.from_json(art))
    workdir = Path(manifest["workdir"])
    return Context(workdir=workdir, source=tmp_path / "kernel.toml", settings=manifest["settings"],
                   stagedir=workdir / "stages" / "distgit", log=logging.getLogger("test"),
                   produced=produced, dates=dict(manifest["source_dates"]))


def test_distgit_export_then_koji_build_from_scm_against_local_standin_hub(
        tmp_path: Path, srpm: Path, hub: tuple[StandinHub, Path]) -> None:
    import git

    state, _ = hub
    pf = pipeline_file(tmp_path, srpm, 'mode = "source"\n')
    manifest = json.loads(respin("run", pf, "--until", "inject", "--json").stdout)
    ctx = _context_from(manifest, tmp_path)
    ctx.stagedir.mkdir(parents=True)
    (art,) = DistGitStage.from_table({}, "kernel.toml [distgit]").run(ctx)
    repo = git.Repo(art.path)
    assert repo.active_branch.name == "rawhide" and not repo.is_dirty(untracked_files=True)
    files = sorted(repo.git.ls_files().splitlines())
    assert "kernel.spec" in files and "linux-2.6-config-respin.patch" in files and "sources" in files
    assert not any(f.endswith((".tar.bz2", ".tar.gz", ".bz2")) for f in files)
    sources = (art.path / "sources").read_text().splitlines()
    assert sources and all(re.fullmatch(r"SHA512 \(\S+\) = [0-9a-f]{128}", ln) for ln in sources)
    head = repo.head.commit
    assert isinstance(head.message, str) and head.message.startswith("Add linux-2.6-config-respin.patch")
    assert head.author.email == "respin@localhost"
    # Dated from the pipeline's time, not the clock: so the same export again, even a
    # second later, gives the same commit id.
    from respin.stages.kernel.lib.topdir import source_date

    assert head.authored_date == head.committed_date == source_date(ctx)  # not the clock
    again = DistGitStage.from_table({}, "kernel.toml [distgit]").run(ctx)[0]
    assert again.meta["commit"] == art.meta["commit"]

    # koji builds from that SCM URL: no upload, the hub clones and builds it.
    state.lookaside = Path(art.meta["lookaside"])
    rebuild = KOJI_REBUILD + f'koji_scm = "{art.meta["scm_url"]}"\n'
    pf = pipeline_file(tmp_path, srpm, rebuild)
    manifest = json.loads(respin("run", pf, "--json").stdout)
    assert "rawUpload" not in [c[0] for c in state.calls]
    (build,) = [c for c in state.calls if c[0] == "build"]
    assert build[1][0] == f"git+file://{art.path}#{art.meta['commit']}"
    (rpm,) = [Path(a["path"]) for a in manifest["artifacts"] if a["kind"] == "rpm"]
    assert 'CONFIG_LOCALVERSION="-backend"' in boot_config(rpm)
