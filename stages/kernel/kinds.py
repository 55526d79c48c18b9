"""What the kernel stages hand each other.

Every kind one kernel stage publishes for another is named here once, and what
its meta carries is a frozen dataclass: the publishing stage builds it
(`Snapshot(...).artifact(path)`), a later stage reads it back typed
(`Snapshot.read(ctx)`), so mypy sees a hand-off that no longer fits. This module
is the bottom of the domain: stages and helpers import it, it imports neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from respin.pipeline.stage import Handoff

# What rebuild builds: the package kinds every domain shares.
from respin.stages.lib.packages import RPM as RPM
from respin.stages.lib.packages import SRPM as SRPM

KERNEL_LOCAL = "kernel-local"  # the Source today's kernel specs merge into every config

# The kinds, in the manifest's words.
SOURCE_SRPM = "source-srpm"  # fetch: the SRPM as given
PRISTINE_SPEC = "pristine-spec"  # fetch: its spec, as it came
SOURCES = "sources"  # fetch: its Sources, as they came
SNAPSHOT = "kconfig-snapshot"  # prep: the kernel-*.config files as %prep leaves them at the hook
KCONFIG_FILES = "kconfig-files"  # prep: the prepared tree's Kconfig files and scripts (an archive)
EDITED = "kconfig-edited"  # config: the edited configs
LOCAL = "kernel-local"  # config: the new kernel-local; inject: it, in the build input
PATCH = "patch"  # diff: the config patch; inject: it, in the build input
LOCAL_DIFF = "kernel-local-diff"  # diff: what changed in kernel-local
SPEC = "spec"  # inject: the spec that builds the change
BUILD_INPUT = "build-input"  # inject: SPECS/ and SOURCES/, all that a build of the change reads
LOG = "log"
REPORT = "report"  # verify
DISTGIT = "distgit"  # distgit: the repository
SIGNING = "signing"  # sign: which keys the build signs with (never a private key)
GPG_PUBKEY = "gpg-pubkey"  # sign: the public half of the package signing key (ASCII armour)
REPO = "repo"  # publish: the repository's repomd.xml

Mechanism = Literal["patch", "kernel-local"]
Layout = Literal["configs-before-patches", "configs-as-sources"]


@dataclass(frozen=True)
class Fetched(Handoff):
    """fetch: the source package (on its SOURCE_SRPM artifact)."""

    kind: ClassVar[str] = SOURCE_SRPM
    name: str
    version: str
    release: str
    changelog_time: int | None
    build_time: int | None
    # %dist and %fedora/%rhel the SRPM was made for, where this host's rpm has none.
    dist_defines: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Snapshot(Handoff):
    """prep: the configs at the hook, and what %prep showed of the spec."""

    kind: ClassVar[str] = SNAPSHOT
    prepared: str  # the source tree %prep unpacked and patched, at the hook, in prep's own topdir
    configs: list[str]
    layout: Layout
    kernel_local: bool  # the spec has a kernel-local Source
    kconfig_files: int
    macros: dict[str, str]  # the spec's macros as rpmbuild evaluated them
    release_takes_localversion: bool


@dataclass(frozen=True)
class Edited(Handoff):
    """config: what was asked, what it changed, and how the build will carry it."""

    kind: ClassVar[str] = EDITED
    requests: dict[str, str | None]  # CONFIG_X -> value, None for "is not set"
    chosen: list[str]  # the configs checked and edited
    changed: list[str]
    mechanism: Mechanism
    resolved: dict[str, str]  # a line respin added for a dependency -> why
    validation: dict[str, str]  # CONFIG_X -> the validator's verdict
    validator: str


@dataclass(frozen=True)
class Injected(Handoff):
    """inject: how the spec now carries the change (on the spec and on the build input)."""

    kind: ClassVar[str] = SPEC
    buildid: str
    # The Source that carries the change: the config patch (2010 layout), kernel-local
    # (today's); None when every value was already set and there was nothing to carry.
    source: str | None = None
    number: int | None = None  # the Patch tag the spec declares it with, for a patch


@dataclass(frozen=True)
class SigningKeys(Handoff):
    """sign: the keys, checked; paths and fingerprints only, never key material."""

    kind: ClassVar[str] = SIGNING
    module_key: str | None = None  # PEM with the private key and its certificate
    module_cert_sha256: str | None = None
    module_key_id: str | None = None  # the certificate's subject key id, as modinfo shows sig_key
    secureboot_key: str | None = None
    secureboot_cert: str | None = None
    secureboot_cert_sha256: str | None = None
    secureboot_not_before: int = 0  # the certificate's start: no image signature is dated earlier
    gpg_home: str | None = None
    gpg_fingerprint: str | None = None  # of the primary key
    gpg_created: int = 0  # the newest creation time of the key and its subkeys
