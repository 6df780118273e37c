"""The node's pod: the rootless buildkitd StatefulSet, its probes and its preStop drain (pure functions).

Split from manifests.py (names, Service, Secret, ConfigMap, NetworkPolicy), whose
constants it shares.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping
from typing import Any

from components.backends.kubernetes import metrics
from components.backends.kubernetes.config import KubernetesNodeSpec as NodeSpec
from components.backends.kubernetes.config import KubernetesSpec
from components.backends.kubernetes.manifests import (
    CONFIG_CHECKSUM,
    CONFIG_VOLUME,
    CONTAINER,
    DRAIN_MARKER,
    DRAIN_POLL_S,
    LAYOUT,
    PORT_NAME,
    SHUTDOWN_GRACE_S,
    SOCKET_ADDR,
    STATE_VOLUME,
    TLS_CHECKSUM,
    TLS_FILES,
    UID,
    config_map_name,
    labels,
    secret_name,
    selector,
    service_name,
    statefulset_name,
)
from components.platforms import ARCH_OF


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


#: The provider's await for this StatefulSet, replacing its built-in one (provider docs, "pulumi.com/waitFor":
#: a JSONPath condition, or a JSON list of them, all to be met; a condition is only checked once
#: .status.observedGeneration has reached .metadata.generation: pkg/await/condition/jsonpath.go). The
#: built-in StatefulSet await of the pinned provider (v4.25.0-alpha.1768448096) does not check
#: observedGeneration, so an update is "complete" on the status of the old generation before the
#: controller has seen it: `pulumi up` returned with the old pod still running, then the pod rolled
#: (tests/k8s/test_pulumi_up.py caught it; fixed upstream later by pulumi-kubernetes PR #4094). For a
#: one-replica StatefulSet, the rollout is done when its one replica is both updated (of the new
#: revision) and ready: the old pod is deleted before the new one is made.
ROLLED_OUT = ["jsonpath={.status.updatedReplicas}=1", "jsonpath={.status.readyReplicas}=1"]
AWAIT_ANNOTATION = "pulumi.com/waitFor"
#: A digest of the StatefulSet's own metadata, and the await's last condition: the object it returns
#: must carry it. The provider's await starts from the patched object, then takes every watch event
#: of the same or a newer .metadata.generation (condition/observer.go), and its informers are shared
#: by the resources of one namespace: an informer already running when this patch landed replays the
#: object as it was before. A change of metadata only (labels, annotations: the upgrade that added
#: the await) keeps the generation, so that old copy was taken, met the replica conditions and became
#: the resource's outputs, and the next preview showed the change again (one of the two StatefulSets
#: in one CI run of tests/k8s/test_pulumi_up.py). Spec changes bump the generation, which it checks.
METADATA_DIGEST = "buildkit-farm/metadata-sha256"


def await_annotations(metadata_labels: Mapping[str, str], conditions: list[str]) -> dict[str, str]:
    """The StatefulSet's annotations: ``conditions`` as its await, met only by the object as applied.

    The digest covers the labels and the conditions, so every change of the StatefulSet's metadata
    changes it (RFC 9535 JSONPath, the provider's: a name with '/' or '-' needs the bracket form).
    """
    digest = hashlib.sha256(json.dumps({"labels": dict(metadata_labels), "waitFor": conditions},
                                       sort_keys=True).encode()).hexdigest()
    applied = f"jsonpath={{.metadata.annotations['{METADATA_DIGEST}']}}={digest}"
    return {METADATA_DIGEST: digest, AWAIT_ANNOTATION: json.dumps([*conditions, applied])}


def _exec(*argv: str) -> dict[str, Any]:
    return {"exec": {"command": list(argv)}}


def statefulset_manifest(spec: KubernetesSpec, node: NodeSpec, *, image: str, buildkit_port: int,
                         volume_gb: int, drain_timeout_s: int, config_sha256: str, tls_sha256: Any,
                         config_files: Mapping[str, tuple[str, str]] | None = None,
                         env: Mapping[str, str] | None = None,
                         secret_env: Mapping[str, str] | None = None,
                         sidecar: metrics.MetricsSidecar | None = None) -> dict[str, Any]:
    """One node: a single-replica StatefulSet with its cache on a retained PVC.

    ``env``: buildkitd's environment (config otel); ``secret_env``: variable -> key of the node's
    Secret (config otel.headers), so the value is never in the StatefulSet. ``sidecar``
    (metrics.port): the metrics endpoint beside buildkitd (components/backends/kubernetes/metrics.py);
    without it the pod is what it always was. ``tls_sha256`` is a string, or a Pulumi Output of one
    (the cert is issued during the deployment); it is only placed in the dict, never inspected.
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
    if env or secret_env:
        container["env"] = [*({"name": k, "value": v} for k, v in (env or {}).items()),
                            *({"name": k, "valueFrom": {"secretKeyRef": {"name": secret_name(node), "key": key}}}
                              for k, key in (secret_env or {}).items())]
    if drain_timeout_s > 0:
        container["lifecycle"] = {"preStop": _exec("sh", "-c", drain_script(drain_timeout_s))}
    volumes: list[dict[str, Any]] = [{
        "name": CONFIG_VOLUME,
        "projected": {
            "defaultMode": 0o440,
            "sources": [
                {"configMap": {"name": config_map_name(node),
                               "items": [{"key": "buildkitd.toml", "path": "buildkitd.toml"},
                                         *({"key": k, "path": rel} for k, (rel, _) in (config_files or {}).items())]}},
                {"secret": {"name": secret_name(node),
                            "items": [{"key": f, "path": f"tls/{f}"} for f in TLS_FILES]}},
            ],
        },
    }]
    pod_extra: dict[str, Any] = {}
    containers = [container]
    if sidecar is not None:
        container["volumeMounts"].append(metrics.run_dir_mount())
        containers.append(metrics.sidecar_container(sidecar))
        volumes += metrics.volumes(config_map_name(node))
        pod_extra["initContainers"] = [metrics.tools_init_container(image)]

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
        "metadata": {"name": statefulset_name(node), "namespace": spec.namespace, "labels": pod_labels,
                     "annotations": await_annotations(pod_labels, ROLLED_OUT)},
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
                    "terminationGracePeriodSeconds": termination_grace_s(drain_timeout_s),
                    "securityContext": {
                        "runAsUser": UID,
                        "runAsGroup": UID,
                        "runAsNonRoot": True,
                        # the state volume and the 0440 cert files belong to group 1000;
                        # OnRootMismatch: no recursive chown of a big cache on every start
                        "fsGroup": UID,
                        "fsGroupChangePolicy": "OnRootMismatch",
                    },
                    **pod_extra,
                    "containers": containers,
                    "volumes": volumes,
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
