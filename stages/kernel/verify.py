"""verify: open what was built and fail unless every requested value is in it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from respin.pipeline import fsutil
from respin.pipeline.errors import VerifyError
from respin.pipeline.stage import Artifact, Context, Stage
from respin.stages.kernel.kinds import GPG_PUBKEY, REPORT, RPM, SRPM, Edited, Injected, SigningKeys
from respin.stages.kernel.lib import kconfig, signing
from respin.stages.kernel.lib.rpmpkg import payload_files, read_package

_BOOT_CONFIG = re.compile(r"^\.?/boot/config-")
_IMAGE = re.compile(r"^\.?/(boot/vmlinuz-|lib/modules/[^/]+/vmlinuz$)")
_MODULE = re.compile(r"\.ko(\.xz|\.gz)?$")


def flavour(name: str) -> str:
    """kernel -> base, kernel-PAE -> PAE, kernel-debug -> debug."""
    return "base" if name == "kernel" else name.removeprefix("kernel-")


class VerifyStage(Stage["VerifyStage.Options"]):
    """Check /boot/config-* in every built kernel package, and the patch in the built SRPM."""

    name = "verify"
    summary = "check every requested value in /boot/config-* of the built kernel packages"
    version = "2"  # 2: checks the [sign] signatures

    @dataclass(frozen=True)
    class Options:
        pass

    def run(self, ctx: Context) -> list[Artifact]:
        reqs = kconfig.recorded(Edited.read(ctx)[1].requests)
        _, inj = Injected.read(ctx)
        report: dict[str, object] = {"requests": {r.name: r.value for r in reqs}, "packages": []}
        packages: list[dict[str, object]] = []
        kernels = 0
        for art in ctx.artifacts(RPM) + ctx.artifacts(SRPM):
            pkg = read_package(art.path)
            entry: dict[str, object] = {"file": art.path.name, "nvr": pkg.nvr}
            if pkg.is_source and inj.kernel_local:
                local = dict(payload_files(art.path, re.compile(r"(^|/)kernel-local$")))
                text = next(iter(local.values()), b"").decode(errors="replace")
                missing = [r for r in reqs if r.line() not in text.splitlines()]
                if missing:
                    raise VerifyError(f"{art.path.name}: its kernel-local lacks {missing[0].line()}")
                entry["kernel_local"] = "kernel-local"
            elif pkg.is_source:
                patch = inj.patch
                if patch not in pkg.files:
                    raise VerifyError(f"{art.path.name}: the source package lacks {patch}")
                entry["patch"] = patch
            else:
                configs = dict(payload_files(art.path, _BOOT_CONFIG))
                if not configs:
                    packages.append(entry)
                    continue
                kernels += 1
                entry["flavour"] = flavour(pkg.name)
                for name, content in sorted(configs.items()):
                    bad = kconfig.mismatches(content.decode(errors="replace"), reqs)
                    if bad:
                        req, found = bad[0]
                        got = "not set" if found is None else found
                        want = "not set" if req.value is None else req.value
                        raise VerifyError(
                            f"{art.path.name}: {name.lstrip('.')} has {req.name} {got}, requested "
                            f"{want} (oldconfig dropped it: check what {req.name} depends on)")
                entry["configs"] = sorted(n.lstrip(".") for n in configs)
            packages.append(entry)
        if kernels == 0 and not ctx.artifacts(SRPM):
            raise VerifyError("the build produced no kernel package with a /boot/config-* file")
        flavours = sorted(str(p["flavour"]) for p in packages if "flavour" in p)
        report["packages"] = packages
        report["flavours"] = flavours
        keys = SigningKeys.find(ctx)
        if keys is not None:
            report["signatures"] = _signatures(ctx, keys)
        out = ctx.stagedir / "report.json"
        fsutil.atomic_write(out, json.dumps(report, indent=1, sort_keys=True) + "\n")
        ctx.log.info("verify: %d requested value(s) present; flavours built: %s", len(reqs),
                     ", ".join(flavours) or "none (source only)")
        return [Artifact(out, REPORT, meta={"flavours": flavours})]


def _signatures(ctx: Context, keys: SigningKeys) -> dict[str, object]:
    """Check every signature the [sign] keys should have put in what was built; what was checked."""
    rpms = [a.path for a in ctx.artifacts(RPM)]
    checked: dict[str, object] = {}
    problems: list[str] = []
    if keys.gpg_fingerprint:
        packages = rpms + [a.path for a in ctx.artifacts(SRPM)]
        pubkey = ctx.artifact(GPG_PUBKEY).path
        problems += signing.signature_problems(packages, pubkey, ctx.run).values()
        checked["packages"] = {"signed_by": keys.gpg_fingerprint, "count": len(packages)}
    if keys.secureboot_cert:
        cert = Path(keys.secureboot_cert)
        images = [(f"{rpm.name}: {name.lstrip('.')}", data) for rpm in rpms
                  for name, data in payload_files(rpm, _IMAGE)]
        problems += [p for name, data in images if (p := signing.image_problem(name, data, cert, ctx.run))]
        if not images:
            problems.append("no kernel image in the built packages carries the Secure Boot signature")
        checked["secureboot"] = {"cert_sha256": keys.secureboot_cert_sha256, "images": len(images)}
    if keys.module_key:
        modules = [(f"{rpm.name}: {name.lstrip('.')}", data) for rpm in rpms
                   for name, data in payload_files(rpm, _MODULE)]
        cert = Path(keys.module_key)
        problems += [p for name, data in modules if (p := signing.module_problem(name, data, cert, ctx.run))]
        if not modules:
            problems.append("no module in the built packages carries the module signature")
        checked["modules"] = {"cert_sha256": keys.module_cert_sha256, "count": len(modules)}
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise VerifyError(problems[0] + more)
    return checked
