"""Signing keys: checked before any build, then used by the build and checked in what it made.

Three kinds of key, each the tool's own format:

- the module key: one PEM file with the private key and its X.509
  certificate, what the kernel's CONFIG_MODULE_SIG_KEY names;
- the Secure Boot key and certificate (PEM), what sbsign takes;
- a GnuPG key in a GnuPG home given by path, what rpmsign signs with.

Every check runs the real tool (openssl, gpg) and fails in one line naming
the file. No private key is ever copied into a stage's outputs or logged;
what the hand-off carries is paths and fingerprints.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import gzip
import lzma
import os
import re
import shlex
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from respin.pipeline.errors import CommandError, InputError, UsageError
from respin.pipeline.process import Runs
from respin.stages.kernel.kinds import SigningKeys

_PRIVATE = re.compile(r"^-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----$", re.M)
_CERT = re.compile(r"^-----BEGIN CERTIFICATE-----$", re.M)


@dataclass(frozen=True)
class Certified:
    """A private key that matches its certificate, and what identifies the certificate."""

    key: Path
    cert: Path
    cert_sha256: str  # lower-case hex, no colons
    key_id: str  # subject key identifier, lower-case hex with colons (modinfo's sig_key form)
    algorithm: str  # "rsa" or "ec"
    not_before: int  # the certificate's start of validity, seconds since the epoch


def _text(path: Path, what: str) -> str:
    """The PEM text of `path`, or one line saying why it cannot be read."""
    if not path.exists():
        raise InputError(f"{path}: {what} does not exist")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, expected {what}")
    try:
        return path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise InputError(f"{path}: {what} is not PEM text (DER or binary; convert it with openssl)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what}: {exc.strerror}") from None


def _openssl(run: Runs, argv: Sequence[str], path: Path, what: str) -> str:
    result = run(["openssl", *argv], check=False, what=f"openssl {argv[0]} of {path.name}")
    if result.returncode != 0:
        last = next((ln for ln in reversed((result.stderr or result.stdout).splitlines()) if ln.strip()), "")
        raise InputError(f"{path}: {what} openssl cannot read ({last.strip() or 'no reason given'})")
    return result.stdout


def _private_key(path: Path, text: str, what: str) -> None:
    """Refuse a file with no private key, or one under a passphrase (builds run without a TTY)."""
    found = _PRIVATE.findall(text)
    if not found:
        raise InputError(f"{path}: holds no private key (expected {what})")
    if "ENCRYPTED PRIVATE KEY" in found or "Proc-Type: 4,ENCRYPTED" in text:
        raise InputError(f"{path}: the private key is encrypted; a build has no TTY to ask for its "
                         "passphrase (write it unencrypted: openssl pkey -in KEY -out PLAIN)")


def certified(key: Path, cert: Path, run: Runs, what: str) -> Certified:
    """Check that `key` holds an unencrypted private key and `cert` a certificate of its public key."""
    key_text = _text(key, what)
    _private_key(key, key_text, what)
    cert_text = _text(cert, f"the certificate of {what}")
    if not _CERT.search(cert_text):
        raise InputError(f"{cert}: holds no certificate (expected a PEM X.509 certificate for {what})")
    key_pub = _openssl(run, ["pkey", "-in", str(key), "-pubout", "-passin", "pass:"], key, "is a key")
    cert_pub = _openssl(run, ["x509", "-in", str(cert), "-noout", "-pubkey"], cert, "is a certificate")
    if key_pub.strip() != cert_pub.strip():
        raise InputError(f"{cert}: the certificate does not match the key in {key}")
    fingerprint = _openssl(run, ["x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"], cert,
                           "is a certificate")
    text = _openssl(run, ["x509", "-in", str(cert), "-noout", "-text"], cert, "is a certificate")
    skid = re.search(r"Subject Key Identifier:\s*\n\s*([0-9A-Fa-f:]+)", text)
    algorithm = "ec" if "id-ecPublicKey" in text else "rsa"
    sha256 = fingerprint.split("=", 1)[-1].strip().replace(":", "").lower()
    start = re.search(r"Not Before\s*:\s*(.+?)\s*$", text, re.M)
    return Certified(key=key, cert=cert, cert_sha256=sha256, key_id=skid[1].lower() if skid else "",
                     algorithm=algorithm, not_before=_openssl_time(start[1]) if start else 0)


def _openssl_time(text: str) -> int:
    """openssl's "Dec  6 11:04:12 2026 GMT" as seconds since the epoch."""
    when = datetime.datetime.strptime(" ".join(text.split()), "%b %d %H:%M:%S %Y %Z")
    return int(when.replace(tzinfo=datetime.UTC).timestamp())


# --- GnuPG ---------------------------------------------------------------------


def gpg_program() -> str:
    """The gpg command (rpm's own default names gpg2, which Debian does not ship)."""
    found = shutil.which("gpg") or shutil.which("gpg2")
    if found is None:
        raise UsageError("gpg is not installed: signing packages needs GnuPG (package gnupg)")
    return found


@contextlib.contextmanager
def gpg_session(home: Path, run: Runs) -> Iterator[None]:
    """Run gpg commands in `home`, ending the gpg-agent they start unless one ran before:
    respin leaves no daemon behind, and ends none of the user's."""
    running = _agent_running(home, run)
    try:
        yield
    finally:
        if not running:
            run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False,
                what="ending gpg-agent")


def _agent_running(home: Path, run: Runs) -> bool:
    """Whether a gpg-agent answers on `home`'s socket (gpg-connect-agent says "no agent" with
    status 0, so ask the socket itself)."""
    where = run(["gpgconf", "--homedir", str(home), "--list-dirs", "agent-socket"], check=False,
                what="gpgconf --list-dirs").stdout.strip()
    if not where:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(where)
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class GpgKey:
    home: Path
    fingerprint: str  # of the primary key
    created: int = 0  # the newest creation time of the key and its subkeys

    def signing_time(self, epoch: int) -> int:
        """When a signature by this key is dated: the build's time, unless the key is newer
        (gpg refuses a key from its future). Either way the same inputs give the same date."""
        return max(epoch, self.created)


def gpg_key_of(keys: SigningKeys | None) -> GpgKey | None:
    """The package signing key the sign stage checked, if it named one."""
    if keys is None or not keys.gpg_home or not keys.gpg_fingerprint:
        return None
    return GpgKey(Path(keys.gpg_home), keys.gpg_fingerprint, keys.gpg_created)


def gpg_key(home: Path, key: str, run: Runs) -> GpgKey:
    """Check that `home` holds the secret key `key` and that it signs without a passphrase."""
    if not home.is_dir():
        raise InputError(f"{home}: is not a GnuPG home (no such directory)")
    gpg = gpg_program()
    listing = run([gpg, "--homedir", str(home), "--batch", "--with-colons", "--list-secret-keys", "--", key],
                  check=False, what=f"gpg --list-secret-keys {key}")
    fprs = re.findall(r"^fpr:(?:[^:]*:){8}([0-9A-F]+):", listing.stdout, re.M)
    created = [int(t) for t in re.findall(r"^(?:sec|ssb):(?:[^:]*:){4}(\d+):", listing.stdout, re.M)]
    if listing.returncode != 0 or not fprs:
        raise InputError(f"{home}: holds no secret key '{key}' (gpg --homedir {home} --list-secret-keys)")
    with tempfile.TemporaryDirectory(prefix="respin-gpg-") as tmp:
        probe = Path(tmp) / "probe"
        probe.write_bytes(b"respin signing probe\n")
        signed = run([gpg, "--homedir", str(home), "--batch", "--pinentry-mode", "error", "--local-user", key,
                      "--detach-sign", "--output", str(probe) + ".sig", str(probe)],
                     check=False, what=f"a gpg signing probe with {key}")
    if signed.returncode != 0:
        raise InputError(f"{home}: key '{key}' cannot sign without a passphrase; a build has no TTY to "
                         "ask for one (use a key without one, or cache it in gpg-agent first)")
    return GpgKey(home=home, fingerprint=fprs[0], created=max(created, default=0))


def export_public(key: GpgKey, run: Runs) -> str:
    """The ASCII-armoured public key (what rpm --import and dnf's gpgkey= read)."""
    result = run([gpg_program(), "--homedir", str(key.home), "--batch", "--armor", "--export",
                  key.fingerprint], what=f"gpg --export {key.fingerprint}")
    if "BEGIN PGP PUBLIC KEY BLOCK" not in result.stdout:
        raise CommandError(f"{key.home}: gpg exported nothing for {key.fingerprint}")
    return result.stdout


def rpmsign(packages: Sequence[Path], key: GpgKey, epoch: int, run: Runs,
            log_file: Path | None = None) -> None:
    """Sign `packages` in place; the signature is dated `epoch`, so the same key gives the same bytes."""
    if not packages:
        return
    defines = {"_gpg_path": str(key.home), "_gpg_name": key.fingerprint, "__gpg": gpg_program(),
               # A signature packet carries its creation time: date it as the build.
               "_gpg_sign_cmd_extra_args": "--batch --pinentry-mode error --faked-system-time "
                                           f"{key.signing_time(epoch)}!"}
    argv = ["rpmsign", "--addsign"]
    for name, value in defines.items():
        argv += ["--define", f"{name} {value}"]
    run([*argv, *map(str, packages)], log_file=log_file, what=f"rpmsign of {len(packages)} package(s)")


def signature_problems(packages: Sequence[Path], pubkey: Path, run: Runs) -> dict[Path, str]:
    """Each package `rpm -K` does not find signed by `pubkey`, with why in one line; checked
    against an rpmdb of its own that holds that key only."""
    problems = {}
    with tempfile.TemporaryDirectory(prefix="respin-rpmdb-") as db:
        run(["rpm", "--dbpath", db, "--import", str(pubkey)], what=f"rpm --import {pubkey.name}")
        for pkg in packages:
            result = run(["rpm", "--dbpath", db, "-Kv", str(pkg)], check=False, what=f"rpm -K {pkg.name}")
            signed = re.search(r"Signature, key ID [0-9a-f]+: OK", result.stdout)
            if result.returncode != 0 or not signed:
                bad = [ln.strip() for ln in result.stdout.splitlines()[1:] if not ln.strip().endswith(": OK")]
                why = bad[0] if bad else "no signature"
                problems[pkg] = f"{pkg.name}: not signed by the [sign] gpg_key ({why})"
    return problems


# --- in the build ----------------------------------------------------------------

# The kernel build makes its module signing key with `openssl req -new -x509 -config
# certs/x509.genkey -out certs/signing_key.pem -keyout certs/signing_key.pem` (its own
# Makefile, and Fedora's spec, which then copies that file to sign modules after
# install). This stand-in, first on the build's PATH, writes the user's key there
# instead; every other openssl command is the real one. The kernel then embeds the
# user's certificate and signs every module with the user's key, in its own steps.
_OPENSSL_SHIM = """#!/bin/sh
out= genkey= prev=
for arg in "$@"; do
  case "$prev" in
    -out) out=$arg ;;
    -config) case "$arg" in *x509.genkey) genkey=1 ;; esac ;;
  esac
  prev=$arg
done
if [ "$1" = req ] && [ -n "$genkey" ] && [ -n "$out" ]; then
  # Readable by the build alone, as openssl itself writes a key: a new file under umask 077.
  umask 077
  rm -f -- "$out"
  exec cat {key} > "$out"
fi
exec {real} "$@"
"""


@dataclass(frozen=True)
class InBuild:
    """What a build needs to sign with the keys: directories to copy in (seen path ->
    directory), PATH, macros."""

    copies: dict[Path, Path]
    path_prefix: tuple[str, ...]
    defines: dict[str, str]


# What the kernel build calls its module key: certs/signing_key.pem, and Fedora's copies of it
# (signing_key.pem.sign, .sign+debug...). Such a file is removed from the build trees after every
# build, the kernel's own throwaway key too: whoever holds it can sign modules the kernel loads.
_KEY_NAME = re.compile(r"^signing_key\.pem")

# The private directory of one build's key copies, in the work dir: a temp name, so a run that
# was killed leaves it where the next run's start removes it (fsutil.remove_stale_temps).
KEYS_PREFIX = ".respin-keys."


@contextlib.contextmanager
def in_build(keys: SigningKeys | None, seen_at: Path, epoch: int, *, private_in: Path,
             trees: Sequence[Path] = ()) -> Iterator[InBuild]:
    """Copies of the module and Secure Boot keys (mode 0600) in a private directory (mode
    0700) under `private_in` for one build, which sees it at `seen_at`; removed when the build
    ends, however it ends, with every file in `trees` that holds one of the keys or is named as
    the kernel's (see remove_key_copies). An image's signature is dated `epoch` (or the
    certificate's start, if later)."""
    try:
        if keys is None or not (keys.module_key or keys.secureboot_key):
            yield InBuild({}, (), {})
            return
        private_in.mkdir(parents=True, exist_ok=True)
        here = Path(tempfile.mkdtemp(prefix=KEYS_PREFIX, suffix=".tmp", dir=private_in))
        try:
            yield _key_copies(keys, here, seen_at, epoch)
        finally:
            shutil.rmtree(here, ignore_errors=True)
    finally:
        remove_key_copies(trees, keys)


def _key_copies(keys: SigningKeys, here: Path, seen_at: Path, epoch: int) -> InBuild:
    """Copy the keys into `here`, and say how the build, seeing `here` at `seen_at`, uses them."""
    path_prefix: tuple[str, ...] = ()
    defines: dict[str, str] = {}
    if keys.module_key:
        _private_copy(Path(keys.module_key), here / "module.pem")
        real = shutil.which("openssl")
        if real is None:
            raise UsageError("openssl is not installed: the kernel build needs it to sign modules")
        (here / "bin").mkdir()
        shim = here / "bin" / "openssl"
        shim.write_text(_OPENSSL_SHIM.format(key=shlex.quote(str(seen_at / "module.pem")),
                                             real=shlex.quote(real)))
        shim.chmod(0o700)
        path_prefix = (str(seen_at / "bin"),)
    if keys.secureboot_key and keys.secureboot_cert:
        _private_copy(Path(keys.secureboot_key), here / "secureboot.key")
        _private_copy(Path(keys.secureboot_cert), here / "secureboot.crt")
        # Fedora's spec signs the image with `%pesign -s -i IN -o OUT -a CA -c CERT -n NAME`
        # (pesign's macro on Fedora's builders); here it is sbsign with the [sign] pair.
        defines["pesign(si:o:a:c:n:)"] = (f"{_frozen_clock(max(epoch, keys.secureboot_not_before))}"
                                          f"sbsign --key {seen_at}/secureboot.key --cert "
                                          f"{seen_at}/secureboot.crt --output %{{-o*}} %{{-i*}}")
    return InBuild({seen_at: here}, path_prefix, defines)


def _needles(keys: SigningKeys | None) -> list[bytes]:
    """What betrays a copy of a [sign] private key in a file: a line of its PEM text, a run
    of its DER bytes."""
    needles: list[bytes] = []
    for name in (keys.module_key, keys.secureboot_key) if keys else ():
        if not name:
            continue
        text = Path(name).read_text(encoding="ascii", errors="replace")
        for block in re.findall(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\n(.*?)-----END", text, re.S):
            lines = [ln.strip() for ln in block.splitlines() if len(ln.strip()) >= 60]
            if lines:
                needles.append(lines[len(lines) // 2].encode())
            with contextlib.suppress(ValueError):
                der = base64.b64decode("".join(ln.strip() for ln in block.splitlines()
                                               if ":" not in ln), validate=False)
                if len(der) >= 96:
                    needles.append(der[len(der) // 2:len(der) // 2 + 48])
    return needles


def remove_key_copies(trees: Sequence[Path], keys: SigningKeys | None) -> list[Path]:
    """Remove each file under `trees` named as the kernel's module key (signing_key.pem*) or
    holding a [sign] private key; return what was removed. The trees are the build's, which
    an unprivileged build wrote: walked through directory descriptors, never through a link."""
    needles = _needles(keys)
    removed: list[Path] = []
    for tree in trees:
        if not tree.is_dir() or tree.is_symlink():
            continue
        for top, _dirs, files, dir_fd in os.fwalk(tree, follow_symlinks=False):
            for name in files:
                if _KEY_NAME.match(name) or (needles and _holds(dir_fd, name, needles)):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=dir_fd)
                        removed.append(Path(top) / name)
    return removed


def _holds(dir_fd: int, name: str, needles: Sequence[bytes]) -> bool:
    """Whether regular file `name` (in `dir_fd`, not followed if a link) contains a needle."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return False
    overlap = max(len(n) for n in needles)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        tail = b""
        while chunk := fh.read(1 << 20):
            window = tail + chunk
            if any(n in window for n in needles):
                return True
            tail = window[-overlap:]
    return False


def _frozen_clock(when: int) -> str:
    """The command prefix that stops the clock at `when` for sbsign, which dates its signature
    with the time it runs (an Authenticode signing-time attribute); "" without faketime."""
    if shutil.which("faketime") is None:
        return ""
    stamp = datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"TZ=UTC faketime -f '{stamp}' "


def _private_copy(src: Path, dst: Path) -> None:
    """Copy a key readable by its owner only."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(src.read_bytes())


# --- in what was built -----------------------------------------------------------

_MODULE_MAGIC = b"~Module signature appended~\n"
_SIG_INFO = 12  # struct module_signature: algo, hash, id_type, signer_len, key_id_len, pad[3], be32 sig_len


def split_module(data: bytes) -> tuple[bytes, bytes] | None:
    """A module's signed content and its PKCS#7 signature, or None when it carries none."""
    if not data.endswith(_MODULE_MAGIC) or len(data) < len(_MODULE_MAGIC) + _SIG_INFO:
        return None
    end = len(data) - len(_MODULE_MAGIC) - _SIG_INFO
    sig_len = int.from_bytes(data[end + 8:end + 12], "big")
    if sig_len <= 0 or sig_len > end:
        return None
    return data[:end - sig_len], data[end - sig_len:end]


def decompressed_module(name: str, data: bytes) -> bytes:
    """A module as the kernel loads it (distributions compress them after signing)."""
    if name.endswith(".xz"):
        return lzma.decompress(data)
    if name.endswith(".gz"):
        return gzip.decompress(data)
    return data


def module_problem(name: str, data: bytes, cert: Path, run: Runs) -> str | None:
    """Why module `name` is not signed by the key of `cert`, or None when it is: the
    signature is checked with openssl against that certificate alone."""
    parts = split_module(decompressed_module(name, data))
    if parts is None:
        return f"{name} carries no module signature"
    with tempfile.TemporaryDirectory(prefix="respin-modsig-") as tmp:
        body, sig = Path(tmp) / "body", Path(tmp) / "sig"
        body.write_bytes(parts[0])
        sig.write_bytes(parts[1])
        result = run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(sig),
                      "-content", str(body), "-certfile", str(cert), "-nointern", "-noverify",
                      "-out", os.devnull], check=False, what=f"openssl cms -verify of {name}")
    return None if result.returncode == 0 else f"{name} is signed, but not by the [sign] module_key"


def image_problem(name: str, data: bytes, cert: Path, run: Runs) -> str | None:
    """Why kernel image `name` is not signed for Secure Boot by `cert`'s key, or None."""
    with tempfile.TemporaryDirectory(prefix="respin-sbverify-") as tmp:
        image = Path(tmp) / "image"
        image.write_bytes(data)
        result = run(["sbverify", "--cert", str(cert), str(image)], check=False,
                     what=f"sbverify of {name}")
    if result.returncode == 0:
        return None
    said = (result.stderr or result.stdout).strip().splitlines()
    return f"{name} is not signed by the [sign] Secure Boot certificate ({said[-1] if said else 'sbverify'})"
