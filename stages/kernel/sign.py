"""sign: check the [sign] keys before any build and hand them to the stages that use them.

The signing itself happens where the bytes are made, so nothing is re-signed
after the fact: `rebuild` has the kernel sign its modules with `module_key`,
signs the kernel image with the Secure Boot key inside the build (the
package then carries the signed image with digests to match), and signs
every package it wrote with `gpg_key`; `verify` checks each signature in
what was built; `publish` signs the repository metadata. This stage runs
first among them (after `fetch`), so a bad key fails in one line before any
build starts.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from respin.pipeline import fsutil
from respin.pipeline.errors import UsageError
from respin.pipeline.options import Invalid
from respin.pipeline.stage import Artifact, Context, PipelineView, Problem, Stage
from respin.stages.kernel.kinds import GPG_PUBKEY, RPM, SRPM, SigningKeys
from respin.stages.kernel.lib import signing


class SignStage(Stage["SignStage.Options"]):
    """Check the signing keys; the build, verify and publish stages use them."""

    name = "sign"
    summary = ("check the signing keys (module, Secure Boot, GnuPG) before any build; the build "
               "signs with them")
    version = "1"

    @dataclass(frozen=True)
    class Options:
        module_key: str | None = None  # PEM: private key and certificate (CONFIG_MODULE_SIG_KEY's form)
        secureboot_key: str | None = None  # PEM private key for sbsign
        secureboot_cert: str | None = None  # PEM certificate for sbsign, enrolled in the firmware's db
        gpg_key: str | None = None  # key id or fingerprint
        gpg_home: str | None = None  # a GnuPG home, by path: never the default keyring unless named

        def __post_init__(self) -> None:
            if (self.secureboot_key is None) != (self.secureboot_cert is None):
                missing = "secureboot_cert" if self.secureboot_cert is None else "secureboot_key"
                raise Invalid("needed with the other half of the Secure Boot pair", key=missing)
            if self.gpg_key is not None and self.gpg_home is None:
                raise Invalid("needed with gpg_key: name the GnuPG home (respin does not use the "
                              "default keyring unless it is named)", key="gpg_home")
            if self.gpg_home is not None and self.gpg_key is None:
                raise Invalid("needed with gpg_home: which key signs", key="gpg_key")
            if not (self.module_key or self.secureboot_key or self.gpg_key):
                raise Invalid("nothing to sign with: give module_key, secureboot_key and "
                              "secureboot_cert, and/or gpg_key and gpg_home")

    def inputs(self, ctx: Context) -> list[Path]:
        # The key files decide the signatures; a GnuPG home's public keyring says which keys it holds.
        opts = self.options
        files = [opts.module_key, opts.secureboot_key, opts.secureboot_cert]
        found = [ctx.resolve(f) for f in files if f]
        if opts.gpg_home:
            found += [p for p in (ctx.resolve(opts.gpg_home) / n for n in ("pubring.kbx", "pubring.gpg"))
                      if p.is_file()]
        return found

    def check(self, ctx: Context, pipeline: PipelineView) -> list[Problem]:
        """Before any stage runs: no stage that builds packages comes before this one."""
        builders = [s.name for s in pipeline.before(self.name) if {RPM, SRPM} & set(s.results)]
        if builders:
            return [f"{ctx.source} [sign]: sign comes after {builders[0]}, which builds the packages; "
                    "put it before rebuild (after fetch) so the build signs with its keys"]
        return []

    def run(self, ctx: Context) -> list[Artifact]:
        built = [a.path.name for a in ctx.artifacts(RPM) + ctx.artifacts(SRPM)]
        if built:
            raise UsageError(f"{ctx.source.name}: sign comes after the build that wrote {built[0]}; "
                             "put it before rebuild (after fetch) so the build signs with its keys")
        opts = self.options
        keys = SigningKeys()
        if opts.module_key:
            key = ctx.resolve(opts.module_key)
            mod = signing.certified(key, key, ctx.run, "the module signing key (key and certificate)")
            if mod.algorithm != "rsa":
                ctx.log.warning("sign: %s is not an RSA key: its signatures differ on every build, "
                                "so the modules will not be byte-identical across builds", key)
            keys = replace(keys, module_key=str(key.absolute()), module_cert_sha256=mod.cert_sha256,
                           module_key_id=mod.key_id)
        if opts.secureboot_key and opts.secureboot_cert:
            sb = signing.certified(ctx.resolve(opts.secureboot_key), ctx.resolve(opts.secureboot_cert),
                                   ctx.run, "the Secure Boot key")
            keys = replace(keys, secureboot_key=str(sb.key.absolute()),
                           secureboot_cert=str(sb.cert.absolute()), secureboot_cert_sha256=sb.cert_sha256,
                           secureboot_not_before=sb.not_before)
        artifacts = []
        if opts.gpg_key and opts.gpg_home:
            home = ctx.resolve(opts.gpg_home)
            with signing.gpg_session(home, ctx.run):
                gpg = signing.gpg_key(home, opts.gpg_key, ctx.run)
                pubkey = ctx.stagedir / "RPM-GPG-KEY-respin"
                fsutil.atomic_write(pubkey, signing.export_public(gpg, ctx.run))
            keys = replace(keys, gpg_home=str(home.absolute()), gpg_fingerprint=gpg.fingerprint,
                           gpg_created=gpg.created)
            artifacts.append(Artifact(pubkey, GPG_PUBKEY))
        out = ctx.stagedir / "keys.json"
        fsutil.atomic_write(out, json.dumps(asdict(keys), indent=1, sort_keys=True) + "\n")
        named = [k for k in ("module_key", "secureboot_key", "gpg_key") if getattr(opts, k)]
        ctx.log.info("sign: keys checked: %s", ", ".join(named))
        return [keys.artifact(out), *artifacts]
