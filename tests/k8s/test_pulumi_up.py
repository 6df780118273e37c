"""The Kubernetes backend applied by Pulumi itself: `pulumi up` of the program through the real
pulumi-kubernetes provider (built by toolchain/steps/cluster.sh, installed as the `kubernetes`
plugin) against the local single-node cluster (local/k8s.sh).

The stack is Pulumi.k8s.yaml pointed at this cluster (tests/k8s/cluster.py's stack_yaml: ClusterIP
Services, since the cluster has no load balancer; the locally built rootless image; the cluster's
StorageClass), on a local file backend, with the cluster's kubeconfig in KUBECONFIG. Proves: the
provider creates the namespace, NetworkPolicy, Services, Secrets, ConfigMaps and StatefulSets (and
the StatefulSets their PVCs), with every await it does satisfied (none reaches its timeout: `up`
returns with the pods Ready); the program's builder comes up through its preflight and builds; a
preview right after is clean; `pulumi destroy` removes the namespace and all in it.

With ``metrics.port`` on (the sidecar of kubernetes.metricsImage: the python image local/k8s.sh builds
from this machine's python3): each node's pod serves /metrics through its Service's metrics port to
the farm's client cert, with BuildKit's series and the farm's, and refuses a client without one.

Services reach pods through tests/k8s/cluster.py's ServiceProxy (no kube-proxy). Times are printed
at the end, never asserted.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from components.node.buildkitd_toml import gc_limits
from harness.hosts import ROOT, Pem, https_get, need, openssl_pki, run
from harness.stack import Stack, file_backend, running_stack
from harness.versions import versions_env
from tests.k8s.cluster import (
    NAMESPACE,
    NODE_HOSTS,
    Cluster,
    ServiceProxy,
    busybox_layout,
    cache_dockerfile,
    running_cluster,
    service_proxies,
    stack_yaml,
)
from tests.support.figures import print_past_capture, timings_line

pytestmark = pytest.mark.k8s

PORT = 1234
METRICS_PORT = 9464
STACK = "k8s-tier"
#: what the program creates in the namespace (besides the PVCs, which the StatefulSets make)
KINDS = {"networkpolicy": ["buildkitd"], "service": list(NODE_HOSTS), "secret": [f"{n}-tls" for n in NODE_HOSTS],
         "configmap": [f"{n}-config" for n in NODE_HOSTS], "statefulset": list(NODE_HOSTS)}
DOCKERFILE = cache_dockerfile("bkf-k8s-up")


def kubernetes_plugin() -> Path:
    """The installed real provider; missing: one line saying how to get it."""
    version = versions_env()["PULUMI_KUBERNETES_PROVIDER_VERSION"]
    home = Path(os.environ.get("PULUMI_HOME", ROOT / ".pulumi-home"))
    plugin = home / "plugins" / f"resource-kubernetes-v{version}" / "pulumi-resource-kubernetes"
    if not os.access(plugin, os.X_OK):
        pytest.fail(f"no kubernetes plugin {version} at {plugin}: run toolchain/bootstrap.sh cluster")
    return plugin


@dataclass
class Up:
    dir: Path
    cluster: Cluster
    stack: Stack
    proxies: dict[str, ServiceProxy]
    #: node -> kube-proxy's stand-in for the Service's metrics port (same address as the build port)
    metrics_proxies: dict[str, ServiceProxy]
    #: `pulumi up`'s output (stdout + stderr)
    log: str
    outputs: dict[str, Any]
    timings: dict[str, float]


@pytest.fixture(scope="module")
def up(request: pytest.FixtureRequest) -> Iterator[Up]:
    need("docker", "docker-buildx", "buildctl", "pulumi")
    kubernetes_plugin()
    # a short path: containerd's shim sockets live under the state dir
    d = Path(tempfile.mkdtemp(prefix="bkf-k8s-up.", dir="/tmp"))
    timings: dict[str, float] = {}
    try:
        with running_cluster(d / "s", d / "images", timings) as cluster, \
                service_proxies(cluster, PORT) as proxies, ExitStack() as closing:
            metrics = {}
            for n, h in NODE_HOSTS.items():
                metrics[n] = ServiceProxy(cluster, n, (h, METRICS_PORT), port_name="metrics")
                closing.callback(metrics[n].close)
            env = {**file_backend(d), "KUBECONFIG": str(cluster.kubeconfig)}
            cfg = stack_yaml(cluster.image_ref, metricsImage=cluster.python_ref)["config"]
            cfg["buildkit-farm:metrics"] = {"port": METRICS_PORT}
            with running_stack(STACK, d, cfg, env=env, config=d / f"Pulumi.{STACK}.yaml") as stack:
                t0 = time.monotonic()
                # the program makes the builder too (its create script, preflight of every node)
                r = stack.pulumi("up", "--yes", "--skip-preview", timeout=900)
                timings["pulumi up (objects, awaits, builder)"] = time.monotonic() - t0
                yield Up(d, cluster, stack, proxies, metrics, r.stdout + r.stderr, stack.outputs(), timings)
    finally:
        shutil.rmtree(d, ignore_errors=True)
        print_past_capture(request, timings_line("tests/k8s pulumi times", timings))


def test_up_creates_every_object_through_the_provider(up: Up) -> None:
    # the plugin is the version the SDK announces (else the engine warns and may load another)
    assert "is expected to have version" not in up.log, up.log[-3000:]
    ns = up.cluster.get("namespace", NAMESPACE, None)
    assert ns["status"]["phase"] == "Active"
    for kind, names in KINDS.items():
        for name in names:
            live = up.cluster.get(kind, name)
            # made by the provider (server-side apply under its own field manager), not by kubectl
            managers = {f["manager"] for f in live["metadata"].get("managedFields", [])}
            assert any(mgr.startswith("pulumi-kubernetes") for mgr in managers), (kind, name, managers)
    for node in NODE_HOSTS:
        # `up` returned only after the StatefulSet's await: its pod is Ready, its PVC bound
        sts = up.cluster.get("statefulset", node)
        assert sts["status"].get("readyReplicas") == 1, sts["status"]
        assert up.cluster.get("pvc", f"state-{node}-0")["status"]["phase"] == "Bound"


def test_the_builder_comes_up_through_its_preflight_and_builds(up: Up) -> None:
    # `pulumi up` made the builder (in the stack's BUILDX_CONFIG); its script again, as a user runs it
    made = run(["docker", "buildx", "inspect", "bkf-k8s-tier"], env=up.stack.env)
    assert "tcp://10.79.0.11:1234" in made.stdout, made.stdout
    o = up.outputs
    env = {**up.stack.env, "BKF_TLS_CA": o["caCert"], "BKF_TLS_CERT": o["clientCert"], "BKF_TLS_KEY": o["clientKey"]}
    t0 = time.monotonic()
    out = run(["bash", "-c", o["buildxCreateScript"]], env=env, timeout=300)
    up.timings["builder created again (program's script)"] = time.monotonic() - t0
    for node, host in NODE_HOSTS.items():
        assert f"preflight: node {node} (tcp://{host}:{PORT}) is up and builds linux/amd64" in out.stdout, out.stdout
    assert "builder bkf-k8s-tier ready" in out.stdout, out.stdout
    ctx, dest = up.dir / "ctx", up.dir / "out"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    t0 = time.monotonic()
    run(["docker", "buildx", "build", "--builder", "bkf-k8s-tier", "--progress=plain",
         "--build-context", f"busybox={busybox_layout(up.dir)}", "--build-arg", "STAMP=up",
         "--output", f"type=local,dest={dest}", str(ctx)], env=env, timeout=300)
    up.timings["build"] = time.monotonic() - t0
    assert (dest / "stamps").read_text().split() == ["up"]
    assert up.proxies["amd64-1"].routed, "the build did not go through node amd64-1's Service"


def farm_pki(up: Up) -> tuple[Path, Pem]:
    """The stack's CA and its client cert (the outputs a Prometheus would be given), as files."""
    o, d = up.outputs, up.dir / "pki"
    d.mkdir(exist_ok=True)
    for name, value in (("ca.pem", o["caCert"]), ("client.pem", o["clientCert"]), ("client-key.pem", o["clientKey"])):
        (d / name).write_text(value)
    return d / "ca.pem", Pem(d / "client.pem", d / "client-key.pem")


def test_every_pod_serves_metrics_to_the_farms_client_cert(up: Up, request: pytest.FixtureRequest) -> None:
    ca, client = farm_pki(up)
    for node, host in NODE_HOSTS.items():
        # the node's dial address is in its server cert: verified like the build port
        t0 = time.monotonic()
        status, body = https_get(host, METRICS_PORT, ca, client)
        up.timings[f"scrape {node}"] = time.monotonic() - t0
        assert status == 200, body[-2000:]
        fams = {f.name: f for f in text_string_to_metric_families(body)}
        value = {f: fams[f].samples[0].value for f in fams if f.startswith("bkf_") and len(fams[f].samples) == 1}
        # buildkitd's own series (its gRPC calls, its Go runtime) came through the debug socket the two
        # containers share: the proxy itself writes only bkf_*
        assert "rpc_server_call_duration_seconds" in fams and "go_goroutines" in fams, sorted(fams)
        assert value["bkf_daemon_up"] == 1
        # the farm's: the history through buildctl (copied from the BuildKit image), the PVC, the GC limit
        assert value["bkf_builds_running"] == 0
        assert value["bkf_gc_max_used_bytes"] == gc_limits(20).max_used_gb * 2**30
        assert value["bkf_state_volume_size_bytes"] > 0
        certs = {s.labels["cert"]: s.value for s in fams["bkf_tls_cert_not_after_timestamp_seconds"].samples}
        assert set(certs) == {"server", "ca"} and min(certs.values()) > time.time(), certs
        if node == "amd64-1":
            # the build above went through this node
            assert "buildkit_builds_steps" in fams, sorted(fams)
            builds = {s.labels["status"]: s.value for s in fams["buildkit_builds"].samples}
            assert builds.get("success", 0) >= 1, builds
            assert value["bkf_last_successful_build_timestamp_seconds"] > time.time() - 3600
        print_past_capture(request, f"tests/k8s {node} farm series: " +
                           ", ".join(f"{k} {v:.0f}" for k, v in sorted(value.items())))
    # only /metrics: pprof and the cache endpoints of the debug socket stay inside the pod
    assert https_get(NODE_HOSTS["amd64-1"], METRICS_PORT, ca, client, "/debug/pprof/")[0] == 404
    assert up.metrics_proxies["amd64-1"].routed, "the scrape did not go through the Service's metrics port"


def test_a_scrape_without_the_farms_client_cert_or_with_another_cas_is_refused(up: Up) -> None:
    ca, _ = farm_pki(up)
    _, _, rogue = openssl_pki(up.dir / "rogue", {}, ca_name="rogue")
    for node, host in NODE_HOSTS.items():
        for client in (None, rogue["ci"]):
            routed = len(up.metrics_proxies[node].routed)
            # the handshake fails (TLS 1.3: the server's alert arrives on the first read)
            with pytest.raises((ssl.SSLError, ConnectionError)):
                https_get(host, METRICS_PORT, ca, client)
            # refused by the pod's endpoint, not by a Service that had nowhere to send it
            assert len(up.metrics_proxies[node].routed) == routed + 1


def test_a_preview_right_after_up_is_clean(up: Up) -> None:
    t0 = time.monotonic()
    r = up.stack.pulumi("preview", "--expect-no-changes", check=False, timeout=600)
    up.timings["pulumi preview --expect-no-changes"] = time.monotonic() - t0
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]


def test_destroy_removes_the_namespace_and_everything_in_it(up: Up) -> None:
    t0 = time.monotonic()
    r = up.stack.pulumi("destroy", "--yes", "--skip-preview", check=False, timeout=900)
    up.timings["pulumi destroy"] = time.monotonic() - t0
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    gone = up.cluster.kubectl("get", "namespace", NAMESPACE, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr, gone.stdout + gone.stderr
    pvcs = up.cluster.kubectl("get", "pvc", "-A", "-o", "name", check=False)
    assert pvcs.stdout.strip() == "", pvcs.stdout
