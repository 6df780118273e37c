"""Mandatory: Kubernetes workloads run images pinned by digest."""

from __future__ import annotations

import re

from review.policy.pods import containers, pod_spec
from review.policy.resources import K8S_WORKLOADS, Resource, Settings, get

DIGEST_RE = re.compile(r"@sha256:[0-9a-f]{64}$")


def image_pinned_by_digest(r: Resource, s: Settings) -> list[str]:
    if r.type not in K8S_WORKLOADS:
        return []
    spec = pod_spec(r)
    if spec is None:
        return []
    return [f"{r.name} container {get(c, 'name')}: image {get(c, 'image')!r} is not pinned by digest "
            "(name:tag@sha256:<64 hex>)"
            for c in containers(spec) if not DIGEST_RE.search(str(get(c, "image") or ""))]
