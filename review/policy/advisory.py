"""Advisory: the build cache survives, certificates are short-lived, no platform hangs on one node."""

from __future__ import annotations

from collections.abc import Sequence

from review.policy.payload import payload_env
from review.policy.resources import (
    EBS_VOLUME,
    EC2_INSTANCE,
    K8S_FARM_NAMESPACE,
    K8S_NAMESPACE,
    K8S_STATEFULSET,
    NODE_TYPES,
    REMOTE_COMMAND,
    SSH_NODE,
    TLS_LOCALLY_SIGNED,
    TLS_SELF_SIGNED,
    Resource,
    Settings,
    UnknownValue,
    Violation,
    get,
)

HOURS_PER_YEAR = 24 * 365


def cache_volume_protected(r: Resource, s: Settings) -> list[str]:
    if r.type == EBS_VOLUME and not r.protect:
        return [f"cache volume {r.name} is not protected: `pulumi destroy` (or a replacement) deletes the "
                "build cache; set volume.protect: true"]
    if r.type == K8S_NAMESPACE and r.under(K8S_FARM_NAMESPACE) and not r.protect:
        return [f"namespace {r.name} is not protected: deleting it deletes every node's cache PVC; "
                "set volume.protect: true"]
    if r.type == K8S_STATEFULSET:
        policy = get(r.props, "spec", "persistentVolumeClaimRetentionPolicy") or {}
        if get(policy, "whenDeleted") != "Retain":
            return [f"StatefulSet {r.name} deletes its cache PVC with it (persistentVolumeClaimRetentionPolicy."
                    "whenDeleted is not Retain)"]
    if r.type == REMOTE_COMMAND and r.under(SSH_NODE) and "--purge-state" in str(get(r.props, "delete") or ""):
        return [f"command {r.name}: `pulumi destroy` deletes the node's build cache "
                "(ssh.removeStateOnDestroy: true)"]
    return []


def cert_validity_at_most_a_year(r: Resource, s: Settings) -> list[str]:
    if r.type not in (TLS_LOCALLY_SIGNED, TLS_SELF_SIGNED) or get(r.props, "isCaCertificate") is True:
        return []
    hours = get(r.props, "validityPeriodHours")
    if hours is not None and float(hours) > HOURS_PER_YEAR:
        return [f"certificate {r.name} is valid for {int(float(hours))} h ({float(hours) / 24:.0f} days), more "
                f"than a year ({HOURS_PER_YEAR} h): a leaked key stays usable that long; lower pki.validityHours"]
    return []


def node_platform(node: Resource, resources: Sequence[Resource]) -> str | None:
    """A node component's platform, read from its children (payload env, EC2 tag, pod nodeSelector)."""
    for c in resources:
        if c.parent_urn != node.urn:
            continue
        try:
            if c.type == REMOTE_COMMAND:
                env = payload_env(str(get(c.props, "create") or ""))
                if env.get("BKF_PLATFORM"):
                    return env["BKF_PLATFORM"]
            elif c.type == EC2_INSTANCE:
                tag = get(c.props, "tags", "buildkit-farm/platform")
                if tag:
                    return str(tag)
            elif c.type == K8S_STATEFULSET:
                arch = get(c.props, "spec", "template", "spec", "nodeSelector", "kubernetes.io/arch")
                if arch:
                    return f"linux/{arch}"
        except UnknownValue:
            continue
    return None


def more_than_one_node_per_platform(resources: Sequence[Resource], s: Settings) -> list[Violation]:
    by_platform: dict[str, list[str]] = {}
    for n in resources:
        if n.type in NODE_TYPES:
            platform = node_platform(n, resources)
            if platform:
                by_platform.setdefault(platform, []).append(n.name)
    return [(f"{p} has a single node ({names[0]}): while it restarts or is down, every {p} build fails; "
             "add a second node for it", None)
            for p, names in sorted(by_platform.items()) if len(names) == 1]
