"""Scale to zero on Kubernetes (idleStop, components/backends/kubernetes/idle.py), applied by the real
pulumi-kubernetes provider against the local cluster, as test_pulumi_up.py does (its own stack: with a
one-minute idle limit its nodes would scale to 0 under that module's builds).

Proves: an idle node's pod scales its own StatefulSet to 0 (its watcher reads the daemon's history, its
scaler PATCHes the `scale` subresource with its projected token) and the PVC stays; a preview is clean
while the nodes are at 0 (the manifest leaves replicas to the scaler and CI); the create script with a
key scales exactly the key's node back to 1, waits for mTLS, and builds (wake-to-first-build printed);
the CI token from the stack outputs may get and patch the scale of the farm's StatefulSets and is denied
(403 from the API server) everything else tried here; the real `bkf status` shows nodes at 0 stopped and
`bkf wake NODE` scales exactly that node. While a node is at 0 its Service has no ready
endpoint, and a dial of its ClusterIP is refused by kube-proxy's REJECT rule for it.

Clients (the create script, its wake and the builds) dial each node's Service at its ClusterIP, routed by
the cluster's kube-proxy (tests/k8s/cluster.py); the pods and the create script reach the API server
where it listens, 10.79.0.1:16443 on the cluster's bridge (the stack's ``kubernetes.apiServer``). The
scaler image is built here from this machine's curl and busybox and imported into the cluster.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.hosts import ROOT, need, run
from harness.stack import Stack, file_backend, running_stack
from tests.k8s.cluster import (
    K8S_SH,
    NAMESPACE,
    NODE_HOSTS,
    Cluster,
    busybox_layout,
    cache_dockerfile,
    dnat_counts,
    poll,
    ready_endpoints,
    rejected,
    routed_to_pod,
    running_cluster,
    stack_yaml,
)
from tests.k8s.test_pulumi_up import kubernetes_plugin
from tests.support.figures import print_past_capture, timings_line

pytestmark = pytest.mark.k8s

PORT = 1234
STACK = "k8s-zero"
BUILDER = "bkf-k8s-zero"
#: where the API server listens (local/k8s.sh: on the cluster's bridge), for the pods and for CI alike
API = "https://10.79.0.1:16443"
SCALER_IMAGE = "bkf.local/scaler:1"


def scaler_image(d: Path) -> Path:
    """sh (busybox) and this machine's curl with the libraries it links: the scaler container's needs."""
    root = d / "scaler"
    for sub in ("bin", "usr/bin", "lib/x86_64-linux-gnu", "lib64", "tmp", "etc"):
        (root / sub).mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    for a in ("sh", "cat", "sleep", "echo", "printf"):
        (root / "bin" / a).symlink_to("busybox")
    curl = shutil.which("curl")
    assert curl
    shutil.copy(curl, root / "usr" / "bin" / "curl")
    for line in run(["ldd", curl]).stdout.splitlines():
        parts = line.split("=>")
        if len(parts) == 2 and parts[1].split() and parts[1].split()[0].startswith("/"):
            shutil.copy(parts[1].split()[0], root / "lib" / "x86_64-linux-gnu")
    shutil.copy("/lib64/ld-linux-x86-64.so.2", root / "lib64")
    tar = d / "scaler.tar"
    digest = run(["python3", str(ROOT / "local" / "k8s" / "mkoci.py"), str(root), str(tar),
                  '{"Env":["PATH=/usr/bin:/bin"]}', SCALER_IMAGE, f"{SCALER_IMAGE.rsplit(':', 1)[0]}@"]).stdout.strip()
    (d / "scaler.ref").write_text(f"{SCALER_IMAGE}@{digest}")
    return tar


@dataclass
class Zero:
    dir: Path
    cluster: Cluster
    stack: Stack
    outputs: dict[str, Any]
    timings: dict[str, float]
    #: monotonic time `pulumi up` returned (the pods were Ready)
    up_at: float


@pytest.fixture(scope="module")
def zero(request: pytest.FixtureRequest) -> Iterator[Zero]:
    need("docker", "docker-buildx", "buildctl", "pulumi", "curl")
    kubernetes_plugin()
    d = Path(tempfile.mkdtemp(prefix="bkf-k8s-zero.", dir="/tmp"))
    timings: dict[str, float] = {}
    try:
        with running_cluster(d / "s", d / "images", timings) as cluster:
            run(["bash", str(K8S_SH), "import", str(d / "s"), str(scaler_image(d))], timeout=300)
            env = {**file_backend(d), "KUBECONFIG": str(cluster.kubeconfig)}
            y = stack_yaml(cluster.image_ref, idleImage=(d / "scaler.ref").read_text(),
                           apiServer=API)
            cfg = y["config"]
            cfg["buildkit-farm:builder"] = {"enabled": True, "name": BUILDER}
            # the shortest the config takes: a minute without builds, checked every 5 s
            cfg["buildkit-farm:idleStop"] = {"afterMinutes": 1, "checkSeconds": 5}
            with running_stack(STACK, d, cfg, env=env, config=d / f"Pulumi.{STACK}.yaml") as stack:
                t0 = time.monotonic()
                stack.pulumi("up", "--yes", "--skip-preview", timeout=900)
                up_at = time.monotonic()
                timings["pulumi up (idleStop on)"] = up_at - t0
                yield Zero(d, cluster, stack, stack.outputs(), timings, up_at)
    finally:
        shutil.rmtree(d, ignore_errors=True)
        print_past_capture(request, timings_line("tests/k8s scale to zero", timings))


def api(z: Zero, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, str]:
    """One request with the CI token from the stack outputs; (status, body)."""
    ctx = ssl.create_default_context(cadata=z.outputs["ciWakeCaCert"])
    req = urllib.request.Request(API + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {z.outputs['ciWakeToken']}",
                                          "Content-Type": "application/merge-patch+json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def replicas(z: Zero, sts: str) -> int:
    return int(z.cluster.get("statefulset", sts)["spec"].get("replicas", 0))


def pod_gone(z: Zero, pod: str) -> Callable[[], bool]:
    return lambda: not z.cluster.exists("pod", pod)


STS = f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets"


def test_the_ci_token_may_scale_the_farm_and_nothing_else(zero: Zero) -> None:
    assert zero.outputs["ciWakeToken"] and "BEGIN CERTIFICATE" in zero.outputs["ciWakeCaCert"]
    # a StatefulSet in the namespace that is not the farm's
    zero.cluster.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "other", "namespace": NAMESPACE},
        "spec": {"replicas": 0, "serviceName": "other", "selector": {"matchLabels": {"app": "other"}},
                 "template": {"metadata": {"labels": {"app": "other"}},
                              "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}}}}))
    allowed = {
        "get the scale of a farm StatefulSet": api(zero, "GET", f"{STS}/amd64-1/scale"),
        "patch the scale of a farm StatefulSet": api(zero, "PATCH", f"{STS}/amd64-2/scale", {"spec": {"replicas": 1}}),
    }
    for what, (status, body) in allowed.items():
        assert status == 200, (what, status, body)
    denied = {
        "get secrets": api(zero, "GET", f"/api/v1/namespaces/{NAMESPACE}/secrets"),
        "get the node's TLS secret": api(zero, "GET", f"/api/v1/namespaces/{NAMESPACE}/secrets/amd64-1-tls"),
        "patch the StatefulSet itself": api(zero, "PATCH", f"{STS}/amd64-1",
                                            {"spec": {"template": {"metadata": {"labels": {"x": "y"}}}}}),
        "delete a pod": api(zero, "DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/amd64-1-0"),
        "scale another StatefulSet": api(zero, "PATCH", f"{STS}/other/scale", {"spec": {"replicas": 1}}),
        "list StatefulSets": api(zero, "GET", STS),
    }
    for what, (status, body) in denied.items():
        assert status == 403, (what, status, body[:300])
        assert "forbidden" in body, (what, body[:300])
    # denied as the farm's CI ServiceAccount (not an unauthenticated 403)
    assert f"system:serviceaccount:{NAMESPACE}:bkf-ci-wake" in denied["get secrets"][1], denied["get secrets"]
    zero.cluster.kubectl("delete", "statefulset", "other", "-n", NAMESPACE)


def test_an_idle_node_scales_its_statefulset_to_zero_and_keeps_its_pvc(zero: Zero) -> None:
    claims = {n: zero.cluster.get("pvc", f"state-{n}-0")["metadata"]["uid"] for n in NODE_HOSTS}
    poll("both nodes scaled to 0 by their own scalers",
         lambda: all(replicas(zero, n) == 0 for n in NODE_HOSTS), timeout=420, every=2)
    zero.timings["idle to 0 (both nodes, from up; limit 60 s)"] = time.monotonic() - zero.up_at
    for n in NODE_HOSTS:
        poll(f"pod {n}-0 gone", pod_gone(zero, f"{n}-0"), timeout=300)
        sts = zero.cluster.get("statefulset", n)
        # the field's manager is the scaler's ServiceAccount, not Pulumi
        managers = [f["manager"] for f in sts["metadata"]["managedFields"]
                    if '"f:replicas"' in json.dumps(f.get("fieldsV1", {}))]
        assert not any(m.startswith("pulumi-kubernetes") for m in managers), managers
        pvc = zero.cluster.get("pvc", f"state-{n}-0")
        assert pvc["metadata"]["uid"] == claims[n] and pvc["status"]["phase"] == "Bound", pvc["status"]


def rejecting(node: str) -> Callable[[], bool]:
    return lambda: PORT in rejected(node)


def test_a_node_at_zero_is_refused_at_its_cluster_ip(zero: Zero) -> None:
    for n, host in NODE_HOSTS.items():
        assert replicas(zero, n) == 0 and not ready_endpoints(zero.cluster, n)
        # no endpoint: kube-proxy has no DNAT rule for the Service, it REJECTs its port instead
        poll(f"kube-proxy's REJECT rule for {n}'s Service", rejecting(n), timeout=60)
        assert dnat_counts(n) == {}, dnat_counts(n)
        before = rejected(n)[PORT]
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, PORT), timeout=30).close()
        # refused by that rule (one new connection), not by anything else on the way
        assert rejected(n)[PORT] == before + 1, rejected(n)


def test_a_preview_is_clean_while_the_nodes_are_at_zero(zero: Zero) -> None:
    assert all(replicas(zero, n) == 0 for n in NODE_HOSTS)
    t0 = time.monotonic()
    r = zero.stack.pulumi("preview", "--expect-no-changes", check=False, timeout=600)
    zero.timings["pulumi preview --expect-no-changes (at 0)"] = time.monotonic() - t0
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert all(replicas(zero, n) == 0 for n in NODE_HOSTS)


def test_the_create_script_wakes_exactly_the_keys_node_and_builds(zero: Zero) -> None:
    o = zero.outputs
    env = {**zero.stack.env, "BKF_TLS_CA": o["caCert"], "BKF_TLS_CERT": o["clientCert"],
           "BKF_TLS_KEY": o["clientKey"], "BKF_K8S_API": API, "BKF_K8S_TOKEN": o["ciWakeToken"],
           "BKF_K8S_CA": o["ciWakeCaCert"]}
    ctx, dest = zero.dir / "ctx", zero.dir / "out"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(cache_dockerfile("bkf-k8s-zero"))
    layout = busybox_layout(zero.dir)
    t0 = time.monotonic()
    out = run(["bash", "-c", o["buildxCreateScript"], "create", "--key", "repo-a"], env=env, timeout=900)
    t1 = time.monotonic()
    order = next(line for line in out.stdout.splitlines() if line.startswith("affinity: key repo-a orders"))
    first, second = order.split(" as ")[1].split()
    assert f"wake: scaling node {first} (statefulset {first}) to 1" in out.stdout, out.stdout
    assert f"wake: node {first} answers mTLS" in out.stdout, out.stdout
    # it answered before the script's wait ran out (the line above is printed either way)
    assert f"wake: node {first} does not answer yet" not in out.stderr, out.stderr
    assert replicas(zero, first) == 1 and replicas(zero, second) == 0, (first, second)
    # the wait for mTLS and the preflight reached the woken pod through its ClusterIP (kube-proxy's
    # DNAT rule for the new pod, which counts from its creation)
    woke = routed_to_pod(zero.cluster, first, PORT)
    assert woke > 0, dnat_counts(first)
    run(["docker", "buildx", "build", "--builder", BUILDER, "--progress=plain",
         "--build-context", f"busybox={layout}", "--build-arg", "STAMP=woken",
         "--output", f"type=local,dest={dest}", str(ctx)], env=env, timeout=600)
    t2 = time.monotonic()
    zero.timings["wake: scale to 1 until mTLS (create script)"] = t1 - t0
    zero.timings["wake-to-first-build (script start to build end)"] = t2 - t0
    assert (dest / "stamps").read_text().split() == ["woken"]
    assert routed_to_pod(zero.cluster, first, PORT) > woke, "the build did not go through the woken node's Service"
    # the other node stayed at 0: no endpoint to route to (no DNAT rule), its port still REJECTed
    assert replicas(zero, second) == 0
    assert dnat_counts(second) == {} and PORT in rejected(second), (dnat_counts(second), rejected(second))


def test_bkf_status_shows_nodes_at_zero_stopped_and_bkf_wake_scales_exactly_the_named_one(zero: Zero) -> None:
    """The real `python -m bkf status` and `bkf wake NODE`, as a user runs them, against the real API server
    with the CI token (bkf/k8s.py): a node at 0 is `stopped` (exit 0); the wake PATCHes exactly that
    node's StatefulSet to 1 and returns once it answers mTLS; the other nodes stay at 0."""
    o = zero.outputs
    outputs = zero.dir / "bkf-outputs.json"
    outputs.write_text(json.dumps(o))
    env = {**zero.stack.env, "BKF_K8S_API": API, "BKF_K8S_TOKEN": o["ciWakeToken"],
           "BKF_K8S_CA": o["ciWakeCaCert"]}

    def bkf(*args: str) -> Any:
        return run([sys.executable, "-m", "bkf", *args, "--outputs", str(outputs)], env=env, cwd=ROOT,
                   check=False, timeout=900)

    # the create-script test woke one node: its own idle stop takes it back to 0 (a minute without builds)
    poll("every node back at 0", lambda: all(replicas(zero, n) == 0 for n in NODE_HOSTS), timeout=420, every=2)
    for n in NODE_HOSTS:
        poll(f"pod {n}-0 gone", pod_gone(zero, f"{n}-0"), timeout=300)
    r = bkf("status")
    assert r.returncode == 0, r.stdout + r.stderr
    # the table's rows (the error lines of the silent nodes follow them)
    rows = {line.split()[0]: line.split()[2] for line in r.stdout.splitlines()[1:1 + len(NODE_HOSTS)]}
    assert rows == {n: "stopped" for n in NODE_HOSTS}, r.stdout
    target, others = sorted(NODE_HOSTS)[-1], sorted(NODE_HOSTS)[:-1]
    t0 = time.monotonic()
    r = bkf("wake", target, "--timeout", "300")
    zero.timings["bkf wake NODE: scale to 1 until mTLS"] = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{target}: scaled statefulset {NAMESPACE}/{target} to 1" in r.stdout, r.stdout
    assert f"{target}: answers mTLS" in r.stdout, r.stdout
    assert not any(f"statefulset {NAMESPACE}/{n} " in r.stdout for n in others), r.stdout
    # read back from the API server: exactly the named node's StatefulSet is at 1
    assert {n: replicas(zero, n) for n in NODE_HOSTS} == {target: 1, **{n: 0 for n in others}}
    r = bkf("status", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert {n["name"]: n["state"] for n in json.loads(r.stdout)} == {target: "up", **{n: "stopped" for n in others}}
    assert all(replicas(zero, n) == 0 for n in others)
