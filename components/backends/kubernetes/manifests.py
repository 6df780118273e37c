"""Kubernetes manifests for the farm (pure functions, no Pulumi).

Every function returns a plain dict in the Kubernetes API's own shape (camelCase),
so the same dicts are what ``KubernetesBackend`` registers and what tests validate
offline against the Kubernetes JSON schema. One node is one StatefulSet with one
replica, its own Service (a stable address per buildx node), its own Secret
(server cert) and ConfigMap (buildkitd.toml).

Rootless BuildKit facts these manifests rely on (moby/buildkit docs/rootless.md
and examples/kubernetes): the ``-rootless`` image runs ``rootlesskit buildkitd``
as uid/gid 1000, needs seccomp and AppArmor ``Unconfined`` (rootlesskit creates
user and mount namespaces, which the runtime's default profiles forbid) and
``--oci-worker-no-process-sandbox`` (no PID namespace per RUN step without
privileges). Its network is always the pod's network.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from components.backends.kubernetes.config import KubernetesNodeSpec as NodeSpec
from components.backends.kubernetes.config import KubernetesSpec
from components.node.layout import ROOTLESS_LAYOUT

LAYOUT = ROOTLESS_LAYOUT
CONTAINER = "buildkitd"
PORT_NAME = "buildkitd"
#: metrics.port: the sidecar serving it (components/node/metrics_proxy.py), its port's name, and the
#: ConfigMap key that ships the script
METRICS_CONTAINER = "metrics"
METRICS_PORT_NAME = "metrics"
METRICS_PROXY_KEY = "bkf-metrics.py"
#: the rootless image's user (changing it needs a rebuilt image)
UID = 1000
SOCKET_ADDR = f"unix://{LAYOUT.socket_path}"
STATE_VOLUME = "state"
CONFIG_VOLUME = "config"
#: created by the preStop hook; the readiness probe fails while it exists
DRAIN_MARKER = "/tmp/bkf-draining"
#: seconds buildkitd gets after SIGTERM (after the drain) to close its databases
SHUTDOWN_GRACE_S = 30
DRAIN_POLL_S = 5
#: cloud metadata endpoints (IPv4 everywhere, IPv6 on AWS Nitro)
METADATA_CIDRS = {"ipv4": "169.254.169.254/32", "ipv6": "fd00:ec2::254/128"}
CONFIG_CHECKSUM = "buildkit-farm/config-sha256"
TLS_CHECKSUM = "buildkit-farm/tls-sha256"
NODE_LABEL = "buildkit-farm/node"
#: Pod Security Standards level of the namespace. `baseline` forbids seccomp
#: `Unconfined` and AppArmor `unconfined`, which rootlesskit needs to create its
#: user and mount namespaces; `restricted` is stricter still. So the namespace
#: must be `privileged` even though no container is privileged, runs as root or
#: adds capabilities. The namespace is dedicated to the farm so that the level
#: applies to nothing else.
POD_SECURITY_LEVEL = "privileged"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def tls_checksum(ca_cert_pem: str, cert_pem: str, key_pem: str = "", otel_headers: str = "") -> str:
    """Checksum of what a rotation changes. A new key always comes with a new cert
    (the CSR carries the public key), so the secret key need not be hashed.

    With config otel.headers (read from the Secret once, at the container's start) their change
    must roll the pod too: they enter keyed by the node's private key (HMAC), so the annotation
    gives no way to test guesses of a weak header value. Without, the checksum is what it was."""
    if not otel_headers:
        return sha256(f"{ca_cert_pem}\n{cert_pem}")
    keyed = hmac.new(key_pem.encode(), otel_headers.encode(), "sha256").hexdigest()
    return sha256(f"{ca_cert_pem}\n{cert_pem}\n{keyed}")


def service_name(node: NodeSpec) -> str:
    # node names are DNS-1035 labels of at most 40 characters (config.NODE_NAME_RE)
    return node.name


def statefulset_name(node: NodeSpec) -> str:
    return node.name


def secret_name(node: NodeSpec) -> str:
    return f"{node.name}-tls"


def config_map_name(node: NodeSpec) -> str:
    return f"{node.name}-config"


def pvc_name(node: NodeSpec) -> str:
    """The claim the StatefulSet controller makes from its template (<template>-<sts>-<ordinal>)."""
    return f"{STATE_VOLUME}-{statefulset_name(node)}-0"


def in_cluster_names(svc: str, namespace: str) -> list[str]:
    return [svc, f"{svc}.{namespace}", f"{svc}.{namespace}.svc", f"{svc}.{namespace}.svc.cluster.local"]


def node_port(spec: KubernetesSpec, index: int) -> int:
    return spec.node_port_base + index


def service_port(spec: KubernetesSpec, index: int, buildkit_port: int) -> int:
    """The port clients dial. With NodePort the Service port equals the nodePort, so
    that `<svc>.<ns>.svc:<port>` (in cluster) and `<node-ip>:<port>` both work."""
    return node_port(spec, index) if spec.service_type == "NodePort" else buildkit_port


def dial_host(spec: KubernetesSpec, node: NodeSpec) -> str | None:
    """The host clients dial when it is known from config; None: the load balancer's address."""
    if node.host:
        return node.host
    if spec.service_type == "LoadBalancer":
        return None
    if spec.external_hosts:
        return spec.external_hosts[0]
    return f"{service_name(node)}.{spec.namespace}.svc"


def server_sans(spec: KubernetesSpec, node: NodeSpec, host: str, lb_address: str | None = None) -> list[str]:
    """Every name in the node's server cert: the dial host first, no duplicates."""
    names = [host, *([lb_address] if lb_address else []),
             *in_cluster_names(service_name(node), spec.namespace), *spec.external_hosts, *node.extra_sans]
    out: list[str] = []
    for n in names:
        if n and n not in out:
            out.append(n)
    return out


def labels(node: NodeSpec | None = None) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": "buildkitd",
        "app.kubernetes.io/part-of": "buildkit-farm",
        "app.kubernetes.io/managed-by": "pulumi",
    }
    if node is not None:
        out |= {"app.kubernetes.io/instance": node.name, NODE_LABEL: node.name}
    return out


def selector(node: NodeSpec) -> dict[str, str]:
    """Exactly one node's pod: every node's pod carries its own node label."""
    return {"app.kubernetes.io/name": "buildkitd", NODE_LABEL: node.name}


def namespace_manifest(spec: KubernetesSpec) -> dict[str, Any]:
    pss = {f"pod-security.kubernetes.io/{mode}": POD_SECURITY_LEVEL for mode in ("enforce", "audit", "warn")}
    pss["pod-security.kubernetes.io/enforce-version"] = "latest"
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": spec.namespace, "labels": labels() | pss},
    }


def network_policy_manifest(spec: KubernetesSpec, port: int, allowed_cidrs: Sequence[str],
                            metrics_port: int = 0) -> dict[str, Any]:
    """Every farm pod: ingress only to the build port (and metrics.port when it is on) from
    allowedCidrs; egress anywhere except the cloud metadata address (RUN steps share the pod's network)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "buildkitd", "namespace": spec.namespace, "labels": labels()},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "buildkitd"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{
                "from": [{"ipBlock": {"cidr": c}} for c in allowed_cidrs],
                "ports": [{"protocol": "TCP", "port": p} for p in (port, metrics_port) if p],
            }],
            "egress": [{
                "to": [
                    {"ipBlock": {"cidr": "0.0.0.0/0", "except": [METADATA_CIDRS["ipv4"]]}},
                    {"ipBlock": {"cidr": "::/0", "except": [METADATA_CIDRS["ipv6"]]}},
                ],
            }],
        },
    }


def service_manifest(spec: KubernetesSpec, node: NodeSpec, index: int, buildkit_port: int,
                     allowed_cidrs: Sequence[str], metrics_port: int = 0) -> dict[str, Any]:
    """``metrics_port`` (metrics.port, 0: off) is a second port at the same number. With NodePort its
    nodePort is the cluster's choice: Prometheus usually scrapes the pods from inside the cluster."""
    port: dict[str, Any] = {"name": PORT_NAME, "protocol": "TCP",
                            "port": service_port(spec, index, buildkit_port), "targetPort": buildkit_port}
    ports = [port]
    if metrics_port:
        ports.append({"name": METRICS_PORT_NAME, "protocol": "TCP", "port": metrics_port,
                      "targetPort": metrics_port})
    svc_spec: dict[str, Any] = {"type": spec.service_type, "selector": selector(node), "ports": ports}
    if spec.service_type == "NodePort":
        port["nodePort"] = node_port(spec, index)
    if spec.service_type in ("LoadBalancer", "NodePort"):
        # Keep the client's source address (no SNAT to a node IP), so that the
        # NetworkPolicy's ipBlock rules see the real client.
        svc_spec["externalTrafficPolicy"] = "Local"
    if spec.service_type == "LoadBalancer":
        # the cloud load balancer filters too, before traffic reaches a node
        svc_spec["loadBalancerSourceRanges"] = list(allowed_cidrs)
    metadata: dict[str, Any] = {"name": service_name(node), "namespace": spec.namespace, "labels": labels(node)}
    if spec.service_annotations:
        metadata["annotations"] = dict(spec.service_annotations)
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": svc_spec}


def config_files(files: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Files under the config dir (registry CAs) as ConfigMap key -> (path in the mount, content)."""
    prefix = ROOTLESS_LAYOUT.config_dir + "/"
    out = {}
    for path, content in files.items():
        if not path.startswith(prefix):
            raise ValueError(f"{path} is not under {prefix}")
        rel = path.removeprefix(prefix)
        out[rel.rsplit("/", 1)[-1]] = (rel, content)
    return out


def config_map_manifest(spec: KubernetesSpec, node: NodeSpec, buildkitd_toml: str,
                        files: Mapping[str, tuple[str, str]] | None = None,
                        metrics_proxy: str | None = None) -> dict[str, Any]:
    """buildkitd.toml and the files it names (``config_files``: registry CAs, none by default), and
    with metrics.port the metrics sidecar's script (``metrics_proxy``, as payload.shipped_metrics_proxy
    renders it for every other node)."""
    data = {"buildkitd.toml": buildkitd_toml}
    data.update({key: content for key, (_, content) in (files or {}).items()})
    if metrics_proxy is not None:
        data[METRICS_PROXY_KEY] = metrics_proxy
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": config_map_name(node), "namespace": spec.namespace, "labels": labels(node)},
        "data": data,
    }


TLS_FILES = ("ca.pem", "cert.pem", "key.pem")
#: config otel.headers in the node's Secret (OTEL_EXPORTER_OTLP_HEADERS through a secretKeyRef)
OTEL_HEADERS_KEY = "otel-headers"


def secret_manifest(spec: KubernetesSpec, node: NodeSpec, files: Mapping[str, Any]) -> dict[str, Any]:
    """The node's TLS Secret; ``files`` maps ca.pem/cert.pem/key.pem to PEM (or secret Outputs)."""
    if set(files) - {OTEL_HEADERS_KEY} != set(TLS_FILES):
        raise ValueError(f"TLS secret needs exactly {TLS_FILES} (and maybe {OTEL_HEADERS_KEY}), got {sorted(files)}")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(node), "namespace": spec.namespace, "labels": labels(node)},
        "type": "Opaque",
        "stringData": dict(files),
    }
