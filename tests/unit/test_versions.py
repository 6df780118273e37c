"""One BuildKit release: what the nodes install (components/versions.py) and what the test daemons are
built from (toolchain/versions.env) are the same, and the rootless image is that release's."""

from __future__ import annotations

from components import versions
from harness.versions import versions_env


def test_the_nodes_and_the_toolchain_pin_the_same_buildkit() -> None:
    assert versions_env()["BUILDKIT_VERSION"] == versions.BUILDKIT_VERSION


def test_the_rootless_image_is_the_pinned_release_by_digest() -> None:
    image = versions.BUILDKIT_ROOTLESS_IMAGE
    assert image.startswith(f"moby/buildkit:{versions.BUILDKIT_VERSION}-rootless@sha256:")
    assert len(image.rsplit("@sha256:", 1)[1]) == 64
    # the release tarballs' checksums cover every architecture the nodes run
    assert set(versions.BUILDKIT_SHA256) == {"amd64", "arm64"}
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in versions.BUILDKIT_SHA256.values())
