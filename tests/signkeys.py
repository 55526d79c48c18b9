"""Throwaway signing keys for the tests, made with the real tools (openssl, gpg)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

# Fixed so every key is dated alike; gpg would date it now.
KEY_TIME = 1700000000


def _run(*argv: str | Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=True,
                          stdin=subprocess.DEVNULL, env=env)
    return proc.stdout


def x509_pair(where: Path, name: str, *, combined: bool = False, ec: bool = False) -> tuple[Path, Path]:
    """An unencrypted key and a self-signed certificate; `combined`: both in one PEM file (the
    kernel's CONFIG_MODULE_SIG_KEY form), returned twice."""
    key, cert = where / f"{name}.key", where / f"{name}.crt"
    algo = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] if ec else ["-newkey", "rsa:2048"]
    _run("openssl", "req", "-x509", *algo, "-nodes", "-subj", f"/CN=respin test {name}", "-days", "36500",
         "-addext", "subjectKeyIdentifier=hash", "-keyout", key, "-out", cert)
    if not combined:
        return key, cert
    pem = where / f"{name}.pem"
    pem.write_text(key.read_text() + cert.read_text())
    key.unlink()
    cert.unlink()
    return pem, pem


def encrypted(key: Path, out: Path) -> Path:
    """`key` under a passphrase."""
    _run("openssl", "pkey", "-in", key, "-out", out, "-aes256", "-passout", "pass:secret")
    return out


def gpg_home(where: Path, name: str, *, passphrase: str | None = None) -> tuple[Path, str]:
    """A GnuPG home holding one RSA signing key; its path and the key's fingerprint."""
    home = where / f"gnupg-{name}"
    home.mkdir(mode=0o700)
    protection = f"Passphrase: {passphrase}" if passphrase else "%no-protection"
    params = (f"Key-Type: RSA\n{protection}\nKey-Length: 2048\nKey-Usage: sign\n"
              f"Name-Real: respin test {name}\nName-Email: {name}@respin.invalid\nExpire-Date: 0\n%commit\n")
    (home / "params").write_text(params)
    _run("gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--faked-system-time",
         f"{KEY_TIME}!", "--gen-key", home / "params")
    listing = _run("gpg", "--homedir", home, "--batch", "--with-colons", "--list-secret-keys")
    fingerprint = re.findall(r"^fpr:(?:[^:]*:){8}([0-9A-F]+):", listing, re.M)[0]
    stop_agent(home)
    return home, fingerprint


def stop_agent(home: Path) -> None:
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True,
                   stdin=subprocess.DEVNULL)


def key_lines(path: Path) -> list[str]:
    """The base64 lines of the private key blocks in a PEM file: what must never leak."""
    lines, inside = [], False
    for line in path.read_text().splitlines():
        if line.startswith("-----BEGIN") and "PRIVATE KEY" in line:
            inside = True
        elif line.startswith("-----END"):
            inside = False
        elif inside and len(line) >= 40:
            lines.append(line)
    return lines
