"""Render buildkitd.toml (pure functions, no Pulumi).

Every node, whatever its backend, runs a daemon configured by ``render_buildkitd_toml``:
TCP listener with mutual TLS, a unix socket for local health checks, no insecure
entitlements, GC limits derived from the data volume size (written with explicit
units: a bare TOML integer means *bytes*), a separate policy for
``RUN --mount=type=cache`` data, capped build history, and RUN steps kept off the
host network.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from components.node.layout import DEFAULT_BRIDGE_SUBNET, ROOTFUL_LAYOUT, DaemonLayout


@dataclass(frozen=True)
class GcLimits:
    """Disk limits in GB derived from the data volume size."""

    reserved_gb: int
    max_used_gb: int
    min_free_gb: int
    cache_mount_max_gb: int
    local_source_max_gb: int


def gc_limits(volume_gb: int) -> GcLimits:
    """GC budget for a data volume of ``volume_gb`` GiB.

    buildkitd may use up to 80% of the volume; ``RUN --mount=type=cache`` data gets
    its own budget (a quarter of the volume) so that a flood of layers does not
    evict the package caches that make rebuilds fast, and vice versa.
    """
    if volume_gb < 1:
        raise ValueError(f"volume_gb must be positive, got {volume_gb}")
    return GcLimits(
        reserved_gb=max(1, volume_gb // 10),
        max_used_gb=max(1, volume_gb * 8 // 10),
        min_free_gb=max(1, volume_gb // 10),
        cache_mount_max_gb=max(1, volume_gb // 4),
        local_source_max_gb=max(1, volume_gb // 20),
    )


@dataclass(frozen=True)
class RegistryHost:
    """How the daemon reaches one registry host (``[registry."<host>"]``)."""

    host: str
    mirrors: tuple[str, ...] = ()
    #: plain HTTP (the config allows it only for loopback or private addresses)
    http: bool = False
    #: PEM CA certificate(s) written beside the TOML (see registry_files)
    ca_pem: str | None = None


def _file_stem(host: str) -> str:
    # '10.0.0.5:5000' -> '10.0.0.5_5000': a file name and a ConfigMap key
    return re.sub(r"[^A-Za-z0-9.-]", "_", host)


def registry_ca_key(host: str) -> str:
    """The CA file's name (and ConfigMap key) for a registry host."""
    return f"registry-{_file_stem(host)}-ca.pem"


def registry_ca_path(layout: DaemonLayout, host: str) -> str:
    return f"{layout.registry_dir}/{registry_ca_key(host)}"


def registry_files(layout: DaemonLayout, registries: Sequence[RegistryHost]) -> dict[str, str]:
    """Path -> content of every file the registry sections name (the CA files)."""
    return {registry_ca_path(layout, r.host): r.ca_pem for r in registries if r.ca_pem}


def _registry_lines(layout: DaemonLayout, registries: Sequence[RegistryHost]) -> list[str]:
    lines: list[str] = []
    for r in registries:
        lines += ["", f"[registry.{_s(r.host)}]"]
        if r.mirrors:
            lines.append(f"  mirrors = {_list(r.mirrors)}")
        if r.http:
            lines.append("  # plain HTTP: an explicit opt-in, allowed for loopback/private addresses only")
            lines.append("  http = true")
        if r.ca_pem:
            digest = hashlib.sha256(r.ca_pem.encode()).hexdigest()
            lines.append("  # the CA's sha256 is here so that a new CA changes this file (and restarts buildkitd)")
            lines.append(f"  ca = {_list([registry_ca_path(layout, r.host)])}  # sha256:{digest}")
    if lines:
        lines.append("")
    return lines


def _s(value: str) -> str:
    # TOML basic strings accept JSON's escapes for the ASCII we emit.
    return json.dumps(value)


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_s(v) for v in values) + "]"


def render_buildkitd_toml(
    *,
    platform: str,
    port: int,
    volume_gb: int,
    layout: DaemonLayout = ROOTFUL_LAYOUT,
    history_max_entries: int = 200,
    history_max_age_days: int = 14,
    bridge_subnet: str = DEFAULT_BRIDGE_SUBNET,
    max_parallelism: int = 0,
    registries: Sequence[RegistryHost] = (),
    debug_socket: bool = False,
) -> str:
    """The buildkitd.toml for one node.

    TLS is configured here *and* passed as flags by bkf-node.sh / the pod spec,
    because buildkitd silently starts with an empty config when --config is
    missing, and silently ignores misspelled keys.

    ``debug_socket`` (config metrics.port): buildkitd's debug handlers on a unix socket only root
    (rootless: the daemon's user) may open, read by the node's metrics proxy; without it the
    file is what it always was.
    """
    gc = gc_limits(volume_gb)
    lines = [
        "# Rendered by buildkit-farm; changes are overwritten on the next `pulumi up`.",
        f"root = {_s(layout.state_dir)}",
        "# No insecure entitlements (security.insecure, network.host, device): keep this empty.",
        "insecure-entitlements = []",
        "",
        "[log]",
        '  format = "text"',
        "",
        "[grpc]",
        "  # TCP for clients (mTLS, below); unix socket for local health checks.",
        f"  address = {_list([f'tcp://0.0.0.0:{port}', f'unix://{layout.socket_path}'])}",
        *([
            "  # pprof, /metrics and cache dumps without auth: a 0660 socket of the daemon's user, never TCP;",
            "  # the metrics proxy forwards only GET /metrics from it, behind mTLS",
            f"  debugAddress = {_s('unix://' + layout.debug_socket_path)}",
        ] if debug_socket else ["  # no debugAddress: it would serve pprof and /metrics without auth"]),
        "  [grpc.tls]",
        f"    cert = {_s(layout.cert_path)}",
        f"    key = {_s(layout.key_path)}",
        "    # a CA makes client certificates mandatory (mutual TLS)",
        f"    ca = {_s(layout.ca_path)}",
        "",
        "[history]",
        f"  maxAge = {history_max_age_days * 24 * 3600}  # seconds",
        f"  maxEntries = {history_max_entries}",
        "",
        "[worker.oci]",
        "  enabled = true",
        f"  platforms = {_list([platform])}",
        '  snapshotter = "auto"',
        f"  rootless = {'true' if layout.rootless else 'false'}",
        "  gc = true",
        "  # Units are explicit: a bare integer here would mean bytes.",
        f'  reservedSpace = "{gc.reserved_gb}GB"',
        f'  maxUsedSpace = "{gc.max_used_gb}GB"',
        f'  minFreeSpace = "{gc.min_free_gb}GB"',
    ]
    if max_parallelism:
        lines.append(f"  max-parallelism = {max_parallelism}")
    if not layout.rootless:
        lines += [
            "  # RUN steps get their own network namespace on a bridge instead of the",
            "  # host network (which would reach this daemon's port and the cloud",
            "  # metadata address); bkf-node.sh also firewalls the bridge subnet.",
            '  networkMode = "bridge"',
            f"  cniBinaryPath = {_s(layout.cni_bin_dir)}",
            '  bridgeName = "bkf0"',
            f"  bridgeSubnet = {_s(bridge_subnet)}",
        ]
    else:
        lines += [
            "  # Rootless in an unprivileged pod: no PID namespace per RUN step (same as",
            "  # --oci-worker-no-process-sandbox, which the pod also passes). RUN steps",
            "  # share the pod's network; its NetworkPolicy blocks the metadata address.",
            "  noProcessSandbox = true",
        ]
    lines += [
        "",
        "  # Sources and git checkouts are cheap to refetch.",
        "  [[worker.oci.gcpolicy]]",
        '    filters = ["type==source.local", "type==source.git.checkout"]',
        '    keepDuration = "48h"',
        f'    maxUsedSpace = "{gc.local_source_max_gb}GB"',
        "",
        "  # RUN --mount=type=cache data: its own budget, kept for 30 days.",
        "  [[worker.oci.gcpolicy]]",
        '    filters = ["type==exec.cachemount"]',
        '    keepDuration = "720h"',
        f'    maxUsedSpace = "{gc.cache_mount_max_gb}GB"',
        "",
        "  # Everything else: recently used layers first.",
        "  [[worker.oci.gcpolicy]]",
        "    all = true",
        '    keepDuration = "1440h"',
        f'    maxUsedSpace = "{gc.max_used_gb}GB"',
        "",
        "  [[worker.oci.gcpolicy]]",
        "    all = true",
        f'    reservedSpace = "{gc.reserved_gb}GB"',
        f'    maxUsedSpace = "{gc.max_used_gb}GB"',
        f'    minFreeSpace = "{gc.min_free_gb}GB"',
        "",
        "[worker.containerd]",
        "  enabled = false",
        "",
    ]
    if registries:
        # no registry section at all without registries: such a node's file stays as it was
        lines = lines[:-1] + _registry_lines(layout, registries)
    return "\n".join(lines)
