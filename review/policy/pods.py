"""Kubernetes workloads as the checks read them: the pod spec, its containers, argv and mounts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from review.policy.resources import Resource, get


def pod_spec(r: Resource) -> Mapping[str, Any] | None:
    if r.type == "kubernetes:core/v1:Pod":
        spec = get(r.props, "spec")
    elif r.type == "kubernetes:batch/v1:CronJob":
        spec = get(r.props, "spec", "jobTemplate", "spec", "template", "spec")
    else:
        spec = get(r.props, "spec", "template", "spec")
    return spec if isinstance(spec, Mapping) else None


def containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        out += [c for c in (get(spec, key) or []) if isinstance(c, Mapping)]
    return out


def is_buildkitd(c: Mapping[str, Any]) -> bool:
    image = str(get(c, "image") or "")
    argv = [str(a) for a in (get(c, "command") or []) + (get(c, "args") or [])]
    return "buildkit" in image.rsplit("/", 1)[-1] or any("buildkitd" in a for a in argv) or "--addr" in argv


def container_argv(c: Mapping[str, Any]) -> list[str]:
    return [str(a) for a in (get(c, "command") or []) + (get(c, "args") or [])]


def secret_mounted(spec: Mapping[str, Any], c: Mapping[str, Any], path: str) -> bool:
    """Is ``path`` inside a volume mount whose volume comes from a Secret?"""
    mounts = sorted((m for m in get(c, "volumeMounts") or [] if isinstance(m, Mapping)),
                    key=lambda m: len(str(get(m, "mountPath") or "")), reverse=True)
    for m in mounts:
        mp = str(get(m, "mountPath") or "").rstrip("/")
        if mp and (path == mp or path.startswith(mp + "/")):
            vol = next((v for v in get(spec, "volumes") or [] if get(v, "name") == get(m, "name")), None)
            if vol is None:
                return False
            if get(vol, "secret") is not None:
                return True
            sources = get(vol, "projected", "sources") or []
            return any(get(s, "secret") is not None for s in sources)
    return False
