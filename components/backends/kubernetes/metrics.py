"""metrics.port on Kubernetes: the node's mTLS metrics endpoint as a sidecar of the buildkitd pod (pure functions).

The rootless BuildKit image has no python3, so the endpoint (components/node/metrics_proxy.py, the
same module every other node runs, shipped in the node's ConfigMap) runs in a second container of
an image the user names (``kubernetes.metricsImage``, any image with python3). It reads what it
reads on a host of its own, at the same paths:

* buildkitd's debug socket and gRPC socket: the run dir is an emptyDir both containers mount, so
  the unix sockets the daemon makes there (debugAddress: pprof and /metrics without auth) are
  reachable from this pod's containers only, never over the network;
* the server cert, its key and the farm's CA: the node's Secret, in the same projected config
  volume as buildkitd.toml (the GC limit);
* the state volume (its size and use), read-only;
* buildctl (the history: builds running, last success): copied from the BuildKit image by an init
  container into an emptyDir, so the history client is the daemon's own version whatever the
  python image is (buildctl is a static binary).

The sidecar runs as the daemon's user (the sockets are 0660 of uid 1000) with nothing else: no
privilege escalation, no capabilities, a read-only root, the runtime's default seccomp profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.backends.kubernetes.manifests import (
    CONFIG_VOLUME,
    LAYOUT,
    METRICS_CONTAINER,
    METRICS_PORT_NAME,
    METRICS_PROXY_KEY,
    STATE_VOLUME,
    UID,
)

#: the emptyDir at buildkitd's run dir (its unix sockets), shared by both containers
RUN_VOLUME = "run"
#: the emptyDir the init container copies buildctl into
TOOLS_VOLUME = "bkf-tools"
TOOLS_DIR = "/opt/buildkit-farm/bin"
#: the ConfigMap item holding the script, mounted on its own
PROXY_VOLUME = "metrics-proxy"
PROXY_DIR = "/opt/buildkit-farm/metrics"
TOOLS_INIT_CONTAINER = "bkf-tools"
#: the upstream rootless image (and the local one) keep buildctl here
IMAGE_BUILDCTL = "/usr/bin/buildctl"
#: one scrape: a Python HTTP server and one buildctl call; fixed (no config key) because the
#: endpoint's work does not grow with builds or cache size
RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}}


@dataclass(frozen=True)
class MetricsSidecar:
    """metrics.port and kubernetes.metricsImage, for one pod."""

    port: int
    image: str


def _locked_down() -> dict[str, Any]:
    return {
        "runAsUser": UID,
        "runAsGroup": UID,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def proxy_argv(port: int) -> list[str]:
    """What ``bkf-node.sh metrics`` runs on a host of its own, with the pod's paths."""
    return ["python3", f"{PROXY_DIR}/{METRICS_PROXY_KEY}", "--port", str(port),
            "--tls-dir", LAYOUT.tls_dir, "--debug-socket", LAYOUT.debug_socket_path,
            "--socket", LAYOUT.socket_path, "--buildctl", f"{TOOLS_DIR}/buildctl",
            "--config", LAYOUT.config_path, "--state-dir", LAYOUT.state_dir]


def run_dir_mount() -> dict[str, Any]:
    """buildkitd's own mount of the shared run dir (its sockets go there)."""
    return {"name": RUN_VOLUME, "mountPath": LAYOUT.run_dir}


def tools_init_container(buildkit_image: str) -> dict[str, Any]:
    return {
        "name": TOOLS_INIT_CONTAINER,
        "image": buildkit_image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["cp", IMAGE_BUILDCTL, f"{TOOLS_DIR}/buildctl"],
        "resources": RESOURCES,
        "securityContext": _locked_down(),
        "volumeMounts": [{"name": TOOLS_VOLUME, "mountPath": TOOLS_DIR}],
    }


def sidecar_container(m: MetricsSidecar) -> dict[str, Any]:
    return {
        "name": METRICS_CONTAINER,
        "image": m.image,
        "imagePullPolicy": "IfNotPresent",
        "command": proxy_argv(m.port),
        # the root file system is read-only: no bytecode cache to write
        "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
        "ports": [{"name": METRICS_PORT_NAME, "containerPort": m.port, "protocol": "TCP"}],
        "resources": RESOURCES,
        "securityContext": _locked_down(),
        "volumeMounts": [
            {"name": RUN_VOLUME, "mountPath": LAYOUT.run_dir},
            {"name": STATE_VOLUME, "mountPath": LAYOUT.state_dir, "readOnly": True},
            {"name": CONFIG_VOLUME, "mountPath": LAYOUT.config_dir, "readOnly": True},
            {"name": TOOLS_VOLUME, "mountPath": TOOLS_DIR, "readOnly": True},
            {"name": PROXY_VOLUME, "mountPath": PROXY_DIR, "readOnly": True},
        ],
    }


def volumes(node_config_map: str) -> list[dict[str, Any]]:
    return [
        {"name": RUN_VOLUME, "emptyDir": {}},
        {"name": TOOLS_VOLUME, "emptyDir": {}},
        {"name": PROXY_VOLUME, "configMap": {"name": node_config_map, "defaultMode": 0o444,
                                             "items": [{"key": METRICS_PROXY_KEY, "path": METRICS_PROXY_KEY}]}},
    ]

