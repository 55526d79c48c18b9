"""verify: open what was built and fail unless every requested value is in it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from respin.pipeline import fsutil
from respin.pipeline.errors import VerifyError
from respin.pipeline.stage import Artifact, Context, NoOptions, Stage
from respin.stages.kernel.kinds import GPG_PUBKEY, REPORT, RPM, SRPM, Edited, Injected, SigningKeys
from respin.stages.kernel.lib import kconfig, mechanism, signing, topdir
from respin.stages.kernel.lib.rpmpkg import payload_files, read_package

# Where a kernel package carries its config: today's Fedora ships it as
# /lib/modules/<kver>/config and lists /boot/config-<kver> as %ghost (kernel-install
# copies it there); older packages have it in /boot only.
_CONFIG = re.compile(r"^\.?/(?:lib/modules/(?P<mod>[^/]+)/config|boot/config-(?P<boot>[^/]+))$")
_IMAGE = re.compile(r"^\.?/(?:boot/vmlinuz-(?P<boot>[^/]+)|lib/modules/(?P<mod>[^/]+)/vmlinuz)$")
_MODULE = re.compile(r"\.ko(\.xz|\.gz)?$")


def flavour(name: str) -> str:
    """kernel -> base, kernel-PAE -> PAE, kernel-debug -> debug; kernel-core and
    kernel-debug-core (Fedora's split packages) likewise."""
    name = name.removesuffix("-core")
    return "base" if name == "kernel" else name.removeprefix("kernel-")


def _kver(match: re.Match[str]) -> str:
    return match.group("mod") or match.group("boot")


def _kernels_in(files: Iterable[str]) -> set[str]:
    """The kernel releases a package has an image or a config of (listed, %ghost or not)."""
    return {_kver(m) for f in files if (m := _IMAGE.match(f) or _CONFIG.match(f))}


class VerifyStage(Stage[NoOptions]):
    """Check the config of every kernel in the built packages, and the change in the built SRPM."""

    name = "verify"
    summary = ("check every requested value in the config of each built kernel "
               "(/lib/modules/<kver>/config or /boot/config-*)")
    # 4: the carried Source byte for byte, the patch's too; 3: /lib/modules/<kver>/config,
    # %ghost skipped; 2: checks the [sign] signatures
    version = "4"


    def run(self, ctx: Context) -> list[Artifact]:
        _, edited = Edited.read(ctx)
        reqs = kconfig.recorded(edited.requests)
        carrier = mechanism.of(edited)
        _, inj = Injected.read(ctx)
        # The build input's SOURCES: the package must carry the Source inject wrote there.
        build_sources = topdir.build_input(ctx)[1]
        report: dict[str, object] = {"requests": {r.name: r.value for r in reqs}, "packages": []}
        packages: list[dict[str, object]] = []
        kernels = 0
        for art in ctx.artifacts(RPM) + ctx.artifacts(SRPM):
            pkg = read_package(art.path)
            entry: dict[str, object] = {"file": art.path.name, "nvr": pkg.nvr}
            if pkg.is_source:
                entry.update(carrier.check_source(art.path, reqs, inj, build_sources))
            else:
                kvers = _kernels_in(pkg.files)
                if not kvers:
                    packages.append(entry)
                    continue
                kernels += 1
                entry["flavour"] = flavour(pkg.name)
                entry["configs"] = _check_configs(art.path, kvers, pkg.ghosts, reqs)
            packages.append(entry)
        rpms = ctx.artifacts(RPM)
        if rpms and kernels == 0:
            raise VerifyError(f"the build produced {len(rpms)} binary package(s) and none holds a kernel "
                              "(a /lib/modules/<kver>/vmlinuz, /boot/vmlinuz-*, or a config of one): "
                              "nothing to check the requested values in")
        if not rpms and not ctx.artifacts(SRPM):
            raise VerifyError("the build produced no package to check")
        flavours = sorted(str(p["flavour"]) for p in packages if "flavour" in p)
        report["packages"] = packages
        report["flavours"] = flavours
        report["checked"] = "binary and source packages" if rpms else "source package only"
        keys = SigningKeys.find(ctx)
        if keys is not None:
            report["signatures"] = _signatures(ctx, keys)
        out = ctx.stagedir / "report.json"
        fsutil.atomic_write(out, json.dumps(report, indent=1, sort_keys=True) + "\n")
        if rpms:
            ctx.log.info("verify: %d requested value(s) present in the config of every built kernel; "
                         "flavours built: %s", len(reqs), ", ".join(flavours))
        else:
            # No binary package: the values are in what the build will read, not yet in a kernel.
            ctx.log.info("verify: %d requested value(s) checked in the source package only "
                         "(no binary package was built)", len(reqs))
        return [Artifact(out, REPORT, meta={"flavours": flavours})]


def _check_configs(path: Path, kvers: set[str], ghosts: frozenset[str],
                   reqs: list[kconfig.Request]) -> list[str]:
    """Check every config `path` carries (%ghost ones have no content); fail on a requested
    value one lacks, and on a kernel of `kvers` whose config the package does not carry."""
    configs = {name: data for name, data in payload_files(path, _CONFIG)}
    for name, content in sorted(configs.items()):
        bad = kconfig.mismatches(content.decode(errors="replace"), reqs)
        if bad:
            req, found = bad[0]
            got = "not set" if found is None else found
            want = "not set" if req.value is None else req.value
            raise VerifyError(
                f"{path.name}: {name.lstrip('.')} has {req.name} {got}, requested "
                f"{want} (oldconfig dropped it: check what {req.name} depends on)")
    checked = {_kver(m) for name in configs if (m := _CONFIG.match(name))}
    for kver in sorted(kvers - checked):
        places = (f"/boot/config-{kver}", f"/lib/modules/{kver}/config")
        ghost = next((f for f in places if f in ghosts), None)
        carries = f"lists {ghost} as %ghost (no content) and carries no other config" if ghost else \
            f"carries neither /lib/modules/{kver}/config nor /boot/config-{kver}"
        raise VerifyError(f"{path.name}: kernel {kver} goes unchecked: the package {carries}")
    return sorted(n.lstrip(".") for n in configs)


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
