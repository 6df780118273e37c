"""Scale to zero on Kubernetes (config `idleStop`): the node's StatefulSet goes to 0 replicas when idle,
its PVC stays, and CI scales it back to 1 (pure functions, no Pulumi).

The AWS idle stop (components/node/idle.py) in a pod. Two halves, because the rootless image has
busybox and buildctl but no HTTP client that can PATCH (busybox wget only GETs and POSTs):

* the **watcher** runs in the buildkitd container (its command becomes `sh -c '<watcher> & exec
  rootlesskit buildkitd "$@"'`, the upstream rootless image's entrypoint): it reads the daemon's own
  build history over the unix socket, exactly as bkf-idle.sh does, and past the limit touches
  ``STOP_FILE`` on an emptyDir both containers mount;
* the **scaler** container (``kubernetes.idleImage``: sh and curl) waits for that file, then PATCHes
  the `scale` subresource of its own StatefulSet to 0 with a projected ServiceAccount token that
  only it mounts (buildkitd keeps no token: RUN steps must not find one), checking the API server's
  certificate against the cluster's CA (the `kube-root-ca.crt` ConfigMap).

RBAC: each node's ServiceAccount may only get and patch `statefulsets/scale` of its own StatefulSet;
CI's (``ci_wake_manifests``) only those of the farm's StatefulSets.

Pulumi and the replica count: with idleStop the manifest has no `spec.replicas` at all. The
provider applies server-side, so fields a manifest leaves out are not Pulumi's: the API server
defaults a new StatefulSet to 1, the scaler's and CI's PATCHes own the field afterwards, and a
preview or an update never sets it back (no `ignoreChanges`, which would re-send the old input).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from components.backends.kubernetes.config import KubernetesNodeSpec as NodeSpec
from components.backends.kubernetes.config import KubernetesSpec
from components.backends.kubernetes.manifests import CONTAINER, SOCKET_ADDR, labels, statefulset_name
from components.backends.kubernetes.pod import AWAIT_ANNOTATION, METADATA_DIGEST
from components.node.idle import IdleStop

SCALER = "scaler"
IDLE_VOLUME = "idle"
IDLE_DIR = "/run/bkf-idle"
#: touched by the watcher when the node has been idle long enough: the scaler then scales to 0
STOP_FILE = f"{IDLE_DIR}/stop"
TOKEN_VOLUME = "scaler-token"
TOKEN_DIR = "/var/run/secrets/buildkit-farm"
#: seconds the projected token lives (the kubelet renews it well before)
TOKEN_SECONDS = 3600
CI_WAKE = "bkf-ci-wake"
#: the upstream rootless image's entrypoint, which the watcher's wrapper execs
ENTRYPOINT = ("rootlesskit", "buildkitd")


def idle_name(node: NodeSpec) -> str:
    """The node's ServiceAccount, Role and RoleBinding."""
    return f"{statefulset_name(node)}-idle"


def watcher_script(idle: IdleStop) -> str:
    """busybox sh, in the buildkitd container before it execs the entrypoint. The idle clock runs from
    the newer of the last build's end and the container's start (a node CI has just woken is not
    stopped before its build arrives), and restarts while the daemon does not answer."""
    fmt = "{{if .Record.CompletedAt}}done {{.Record.CompletedAt.Seconds}}{{else}}running{{end}}"
    histories = shlex.join(["buildctl", "--addr", SOCKET_ADDR, "--timeout", "10", "debug", "histories",
                            "--format", fmt])
    return "\n".join([
        f"AFTER_S={idle.after_s} EVERY_S={idle.every_s}",
        "log() { echo \"$(date -u +%Y-%m-%dT%H:%M:%SZ) bkf-idle: $*\" >&2; }",
        "# busy while a build is in flight, else the newest build end (epoch seconds, 0: none)",
        "activity() {",
        f"  out=$({histories} 2>/dev/null) || return 1",
        "  if echo \"$out\" | grep -q '^running'; then echo busy; return 0; fi",
        "  echo \"$out\" | awk '$1==\"done\" && $2+0>m {m=$2+0} END {print m+0}'",
        "}",
        "idle_watch() {",
        f"  rm -f {STOP_FILE}",
        "  since=$(date +%s)",
        "  log \"idle stop on: scale to 0 after ${AFTER_S}s without builds, checked every ${EVERY_S}s\"",
        "  while sleep \"$EVERY_S\"; do",
        "    if ! a=$(activity); then since=$(date +%s); continue; fi",
        "    [ \"$a\" != busy ] || continue",
        "    last=$(( a > since ? a : since ))",
        "    idle=$(( $(date +%s) - last ))",
        "    [ \"$idle\" -ge \"$AFTER_S\" ] || continue",
        "    # once more, right before: a build that started meanwhile keeps the node up",
        "    a=$(activity) || continue",
        "    if [ \"$a\" = busy ] || [ \"$a\" -gt \"$last\" ]; then continue; fi",
        "    log \"no build for ${idle}s (limit ${AFTER_S}s): asking the scaler to scale this node to 0\"",
        f"    touch {STOP_FILE}",
        "    return 0",
        "  done",
        "}",
        "idle_watch &",
        f"exec {shlex.join(ENTRYPOINT)} \"$@\"",
    ])


def scaler_script(namespace: str, statefulset: str) -> str:
    """sh + curl, in the scaler container: wait for the watcher's file, then PATCH the scale to 0 (retried
    until the API server takes it). The token goes to curl on stdin (`-K -`), never in its argv."""
    url = f"$BKF_API_SERVER/apis/apps/v1/namespaces/{namespace}/statefulsets/{statefulset}/scale"
    return "\n".join([
        "trap 'exit 0' TERM INT",
        f"until [ -e {STOP_FILE} ]; do sleep 2; done",
        "while :; do",
        f"  if printf 'header = \"Authorization: Bearer %s\"\\n' \"$(cat {TOKEN_DIR}/token)\" |",
        f"     curl -sS --fail -K - --cacert {TOKEN_DIR}/ca.crt -X PATCH \\",
        "       -H 'Content-Type: application/merge-patch+json' --data '{\"spec\":{\"replicas\":0}}' \\",
        f"       \"{url}\" >/dev/null; then",
        f"    echo \"bkf-idle: scaled statefulset {statefulset} to 0\"; break",
        "  fi",
        "  sleep 10",
        "done",
        "# the pod is being deleted: wait for SIGTERM",
        "while :; do sleep 2; done",
    ])


def with_idle_stop(sts: dict[str, Any], spec: KubernetesSpec, node: NodeSpec, idle: IdleStop,
                   image: str) -> dict[str, Any]:
    """The node's StatefulSet manifest (pod.statefulset_manifest) with the watcher and the scaler."""
    out: dict[str, Any] = {**sts, "spec": {**sts["spec"]}}
    # the replica count is the scaler's and CI's, never Pulumi's (see the module docstring)
    del out["spec"]["replicas"]
    # pod.AWAIT_ANNOTATION waits for one updated, ready replica: a node scaled to 0 never has one, so
    # an `up` while it sleeps would wait out the rollout timeout. Without it the provider's own await
    # applies (its observedGeneration gap is pod.py's note; an `up` of an awake node is still awaited),
    # and the digest only that await's last condition reads goes with it
    annotations = {k: v for k, v in out["metadata"].get("annotations", {}).items()
                   if k not in (AWAIT_ANNOTATION, METADATA_DIGEST)}
    out["metadata"] = {**out["metadata"], "annotations": annotations}
    template = out["spec"]["template"]
    pod = {**template["spec"]}
    out["spec"]["template"] = {**template, "spec": pod}
    idle_mount = {"name": IDLE_VOLUME, "mountPath": IDLE_DIR}
    containers = []
    for c in pod["containers"]:
        if c["name"] == CONTAINER:
            c = {**c, "command": ["sh", "-c", watcher_script(idle), "bkf-node"],
                 "volumeMounts": [*c["volumeMounts"], idle_mount]}
        containers.append(c)
    containers.append({
        "name": SCALER,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", scaler_script(spec.namespace, statefulset_name(node))],
        "env": [{"name": "BKF_API_SERVER", "value": spec.api_server}],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}, "readOnlyRootFilesystem": True},
        "volumeMounts": [idle_mount, {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True}],
    })
    pod["containers"] = containers
    # the token is projected into the scaler alone: automountServiceAccountToken stays false
    pod["serviceAccountName"] = idle_name(node)
    pod["volumes"] = [*pod["volumes"], {"name": IDLE_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}, {
        "name": TOKEN_VOLUME,
        "projected": {"defaultMode": 0o440, "sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": TOKEN_SECONDS}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        ]},
    }]
    return out


def scale_role_manifests(spec: KubernetesSpec, name: str, statefulsets: Sequence[str],
                         extra_labels: dict[str, str]) -> list[dict[str, Any]]:
    """A ServiceAccount whose Role may only get and patch the `scale` of these StatefulSets."""
    meta = {"name": name, "namespace": spec.namespace, "labels": labels() | extra_labels}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta, "automountServiceAccountToken": False},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta, "rules": [{
            "apiGroups": ["apps"], "resources": ["statefulsets/scale"], "resourceNames": list(statefulsets),
            "verbs": ["get", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": spec.namespace}]},
    ]


def node_rbac_manifests(spec: KubernetesSpec, node: NodeSpec) -> list[dict[str, Any]]:
    """The node's own: its scaler may scale exactly its StatefulSet."""
    return scale_role_manifests(spec, idle_name(node), [statefulset_name(node)],
                                {"app.kubernetes.io/instance": node.name})


def ci_wake_manifests(spec: KubernetesSpec, nodes: Sequence[NodeSpec]) -> list[dict[str, Any]]:
    """CI's: get and patch the scale of the farm's StatefulSets, and a long-lived token for it (a Secret
    of type kubernetes.io/service-account-token, which the token controller fills)."""
    return [*scale_role_manifests(spec, CI_WAKE, [statefulset_name(n) for n in nodes], {}), {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
        "metadata": {"name": f"{CI_WAKE}-token", "namespace": spec.namespace, "labels": labels(),
                     "annotations": {"kubernetes.io/service-account.name": CI_WAKE}},
    }]
