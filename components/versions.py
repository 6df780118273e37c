"""Pinned versions and digests of what the nodes run.

One place, so a bump is a reviewable change: the BuildKit release is written once here, and the
rootless image's tag is derived from it (its digest is the one pin a bump must also change). The
toolchain that this machine builds from Go modules (toolchain/versions.env, bash) pins the same
release for the test daemons; tests/unit/test_versions.py checks that the two agree.
"""

BUILDKIT_VERSION = "v0.32.2"

#: SHA-256 of buildkit-<BUILDKIT_VERSION>.linux-<arch>.tar.gz as published (a bump changes these too).
BUILDKIT_SHA256 = {
    "amd64": "2975d0f651ad96ba8b80b9992ae1f9a964f4408569af5b6dc36544165c3926af",
    "arm64": "9e8f46bf309ec0ab262967be5538a4dbe06be756a82621f98253933bac5dcf92",
}

#: Multi-arch index digest of moby/buildkit:<BUILDKIT_VERSION>-rootless (Kubernetes backend).
BUILDKIT_ROOTLESS_DIGEST = "sha256:504731e577c20559c00f968f33219f30115e70be29ab96728d1d06e963fc494b"
BUILDKIT_ROOTLESS_IMAGE = f"moby/buildkit:{BUILDKIT_VERSION}-rootless@{BUILDKIT_ROOTLESS_DIGEST}"

#: Amazon Linux 2023 AMIs, pinned by exact name (owner "amazon"), so the lookup
#: is deterministic: a newer upstream AMI never replaces an instance. Bumping
#: these names is the deliberate act that rolls the nodes onto a new AMI.
AL2023_AMI_OWNER = "amazon"
AL2023_AMI_NAMES = {
    "arm64": "al2023-ami-2023.9.20251208.0-kernel-6.1-arm64",
    "x86_64": "al2023-ami-2023.9.20251208.0-kernel-6.1-x86_64",
}


def buildkit_release_url(version: str, arch: str) -> str:
    return (
        f"https://github.com/moby/buildkit/releases/download/{version}/"
        f"buildkit-{version}.linux-{arch}.tar.gz"
    )
