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
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from components.buildkitd_config import ROOTLESS_LAYOUT
from components.config import ARCH_OF, KubernetesSpec, NodeSpec

LAYOUT = ROOTLESS_LAYOUT
CONTAINER = "buildkitd"
PORT_NAME = "buildkitd"
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


def tls_checksum(ca_cert_pem: str, cert_pem: str) -> str:
    """Checksum of what a rotation changes. A new key always comes with a new cert
    (the CSR carries the public key), so the secret key need not be hashed."""
    return sha256(f"{ca_cert_pem}\n{cert_pem}")


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


def network_policy_manifest(spec: KubernetesSpec, port: int, allowed_cidrs: Sequence[str]) -> dict[str, Any]:
    """Every farm pod: ingress only to the build port from allowedCidrs; egress anywhere
    except the cloud metadata address (RUN steps share the pod's network)."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "buildkitd", "namespace": spec.namespace, "labels": labels()},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "buildkitd"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{
                "from": [{"ipBlock": {"cidr": c}} for c in allowed_cidrs],
                "ports": [{"protocol": "TCP", "port": port}],
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
                     allowed_cidrs: Sequence[str]) -> dict[str, Any]:
    port: dict[str, Any] = {"name": PORT_NAME, "protocol": "TCP",
                            "port": service_port(spec, index, buildkit_port), "targetPort": buildkit_port}
    svc_spec: dict[str, Any] = {"type": spec.service_type, "selector": selector(node), "ports": [port]}
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


def config_map_manifest(spec: KubernetesSpec, node: NodeSpec, buildkitd_toml: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": config_map_name(node), "namespace": spec.namespace, "labels": labels(node)},
        "data": {"buildkitd.toml": buildkitd_toml},
    }


TLS_FILES = ("ca.pem", "cert.pem", "key.pem")


def secret_manifest(spec: KubernetesSpec, node: NodeSpec, files: Mapping[str, Any]) -> dict[str, Any]:
    """The node's TLS Secret; ``files`` maps ca.pem/cert.pem/key.pem to PEM (or secret Outputs)."""
    if set(files) != set(TLS_FILES):
        raise ValueError(f"TLS secret needs exactly {TLS_FILES}, got {sorted(files)}")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(node), "namespace": spec.namespace, "labels": labels(node)},
        "type": "Opaque",
        "stringData": dict(files),
    }


def buildkitd_args(buildkit_port: int) -> list[str]:
    """Appended to the image's `rootlesskit buildkitd`. Listeners and TLS are given as
    flags as well as in the TOML: buildkitd starts with an empty config if --config
    is missing and ignores misspelled keys, and must never serve the TCP port
    without mutual TLS."""
    return [
        "--addr", SOCKET_ADDR,
        "--addr", f"tcp://0.0.0.0:{buildkit_port}",
        "--tlscacert", LAYOUT.ca_path,
        "--tlscert", LAYOUT.cert_path,
        "--tlskey", LAYOUT.key_path,
        "--config", LAYOUT.config_path,
        "--oci-worker-no-process-sandbox",
    ]


def drain_script(timeout_s: int, poll_s: float = DRAIN_POLL_S) -> str:
    """preStop: stop taking new builds, then wait up to ``timeout_s`` for running ones.

    Running builds are read from `buildctl debug histories` (BuildKit v0.32): the
    daemon's ListenBuildHistory with EarlyExit first sends one STARTED event per
    *active* build (HistoryQueue.active, solver/llbsolver/history.go), then one
    COMPLETE event per finished record, then returns; the table's first column is
    the event type. So the number of lines starting with STARTED is the number of
    builds in flight. (`debug monitor` never exits; `debug workers` says nothing
    about builds.) Zero must be seen twice in a row, ``poll_s`` apart, so that
    the gap between two solves of one `buildx bake`/multi-stage session does not
    end the drain. If buildctl fails, the daemon cannot finish anything either:
    stop waiting. The hook always exits 0: Kubernetes sends SIGTERM after it.
    """
    histories = shlex.join(["buildctl", "--addr", SOCKET_ADDR, "debug", "histories"])
    return "\n".join([
        f"touch {DRAIN_MARKER}  # readiness fails: the Service stops sending new builds",
        f"end=$(( $(date +%s) + {timeout_s} ))",
        "idle=0",
        'while [ "$(date +%s)" -lt "$end" ]; do',
        f"  out=$({histories} 2>/dev/null) || exit 0",
        "  running=$(printf '%s\\n' \"$out\" | awk '$1 == \"STARTED\" { n++ } END { print n + 0 }')",
        '  if [ "$running" -eq 0 ]; then',
        "    idle=$((idle + 1))",
        '    [ "$idle" -ge 2 ] && exit 0',
        "  else",
        "    idle=0",
        "  fi",
        f"  sleep {poll_s:g}",
        "done",
        "exit 0",
        "",
    ])


def termination_grace_s(drain_timeout_s: int) -> int:
    """The preStop drain, one more poll, then time for buildkitd to shut down cleanly."""
    return drain_timeout_s + DRAIN_POLL_S + SHUTDOWN_GRACE_S


def _exec(*argv: str) -> dict[str, Any]:
    return {"exec": {"command": list(argv)}}


def statefulset_manifest(spec: KubernetesSpec, node: NodeSpec, *, image: str, buildkit_port: int,
                         volume_gb: int, config_sha256: str, tls_sha256: Any) -> dict[str, Any]:
    """One node: a single-replica StatefulSet with its cache on a retained PVC.

    ``tls_sha256`` is a string, or a Pulumi Output of one (the cert is issued during
    the deployment); it is only placed in the dict, never inspected.
    """
    workers = ["buildctl", "--addr", SOCKET_ADDR, "debug", "workers"]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": buildkitd_args(buildkit_port),
        "ports": [{"name": PORT_NAME, "containerPort": buildkit_port, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": spec.cpu_request, "memory": spec.memory_request},
            "limits": {"cpu": spec.cpu_limit, "memory": spec.memory_limit},
        },
        "securityContext": {
            "runAsUser": UID,
            "runAsGroup": UID,
            "runAsNonRoot": True,
            # rootlesskit makes user and mount namespaces: the default profiles forbid it
            "seccompProfile": {"type": "Unconfined"},
            "appArmorProfile": {"type": "Unconfined"},
        },
        "volumeMounts": [
            {"name": STATE_VOLUME, "mountPath": LAYOUT.state_dir},
            {"name": CONFIG_VOLUME, "mountPath": LAYOUT.config_dir, "readOnly": True},
        ],
        # Probes go over the unix socket: no client certificate needed.
        "startupProbe": {**_exec(*workers), "periodSeconds": 5, "timeoutSeconds": 10, "failureThreshold": 60},
        "readinessProbe": {
            **_exec("sh", "-c", f"test ! -e {DRAIN_MARKER} && exec {shlex.join(workers)} >/dev/null"),
            "periodSeconds": 10, "timeoutSeconds": 10, "failureThreshold": 2,
        },
        "livenessProbe": {**_exec(*workers), "periodSeconds": 30, "timeoutSeconds": 15, "failureThreshold": 4},
    }
    if spec.drain_timeout_s > 0:
        container["lifecycle"] = {"preStop": _exec("sh", "-c", drain_script(spec.drain_timeout_s))}

    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": f"{volume_gb}Gi"}},
    }
    if spec.storage_class:
        claim_spec["storageClassName"] = spec.storage_class

    pod_labels = labels(node)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": statefulset_name(node), "namespace": spec.namespace, "labels": pod_labels},
        "spec": {
            "replicas": 1,
            "serviceName": service_name(node),
            "selector": {"matchLabels": selector(node)},
            "updateStrategy": {"type": "RollingUpdate"},
            "revisionHistoryLimit": 5,
            # the cache outlives the StatefulSet (deleted, replaced or scaled to 0)
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    # buildkitd reads config and certs only at start: a change restarts the pod
                    "annotations": {CONFIG_CHECKSUM: config_sha256, TLS_CHECKSUM: tls_sha256},
                },
                "spec": {
                    # buildkitd needs no API access; RUN steps must not find a token
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "nodeSelector": {"kubernetes.io/os": "linux", "kubernetes.io/arch": ARCH_OF[node.platform]},
                    # builds compete for CPU and disk: prefer one build node per machine
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                        "weight": 100,
                        "podAffinityTerm": {
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "buildkitd"}},
                            "topologyKey": "kubernetes.io/hostname",
                        },
                    }]}},
                    "terminationGracePeriodSeconds": termination_grace_s(spec.drain_timeout_s),
                    "securityContext": {
                        "runAsUser": UID,
                        "runAsGroup": UID,
                        "runAsNonRoot": True,
                        # the state volume and the 0440 cert files belong to group 1000;
                        # OnRootMismatch: no recursive chown of a big cache on every start
                        "fsGroup": UID,
                        "fsGroupChangePolicy": "OnRootMismatch",
                    },
                    "containers": [container],
                    "volumes": [{
                        "name": CONFIG_VOLUME,
                        "projected": {
                            "defaultMode": 0o440,
                            "sources": [
                                {"configMap": {"name": config_map_name(node),
                                               "items": [{"key": "buildkitd.toml", "path": "buildkitd.toml"}]}},
                                {"secret": {"name": secret_name(node),
                                            "items": [{"key": f, "path": f"tls/{f}"} for f in TLS_FILES]}},
                            ],
                        },
                    }],
                },
            },
            "volumeClaimTemplates": [{
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": STATE_VOLUME, "labels": pod_labels},
                "spec": claim_spec,
            }],
        },
    }
