"""The Kubernetes backend's life cycle through Pulumi itself: `pulumi up` of the program through the
real pulumi-kubernetes provider (built by toolchain/steps/cluster.sh, installed as the `kubernetes`
plugin) against the local single-node cluster (local/k8s.sh).

Over 300 lines on purpose: one cluster and one stack go through the whole life cycle in order
(created by the previous Kubernetes program, upgraded, built on, pushed from, re-configured,
renewed, protected, destroyed); split over modules, the cluster and the stack would be made twice.

The stack is Pulumi.k8s.yaml pointed at this cluster (tests/k8s/cluster.py's stack_yaml: ClusterIP
Services, since the cluster has no load balancer; the locally built rootless image; the cluster's
StorageClass; a registry on the cluster's bridge that the nodes trust), on a local file backend,
with the cluster's kubeconfig in KUBECONFIG. In order:

- upgrade (issue 24 item 6): the stack is created by BASELINE's program; this code's preview
  replaces nothing (no StatefulSet, so no PVC), its `up` keeps every PVC and StatefulSet;
- the provider made every object, with every await it does satisfied (none reaches its timeout:
  `up` returns with the pods Ready); the program's builder comes up through its preflight, builds
  with a cache mount, and pushes a two-platform image to the registry (linux/arm64 under QEMU on an
  amd64 pod; the index read back from the registry's API); a preview right after is clean;
- a node setting (buildkit.historyMaxEntries) rolls the pods and keeps the PVCs and a cache mount;
- a renewal of every leaf cert (pki.validityHours) rolls the pods with the new cert, no manual step;
- volume.protect true: `pulumi destroy` refuses and nothing is deleted; false: destroy removes the
  namespace and the PVCs with it.

With ``metrics.port`` on (the sidecar of kubernetes.metricsImage: the python image local/k8s.sh builds
from this machine's python3): each node's pod serves /metrics through its Service's metrics port to
the farm's client cert, with BuildKit's series and the farm's, and refuses a client without one.

Clients dial each node's Service at its ClusterIP, routed by the cluster's kube-proxy
(tests/k8s/cluster.py); that a connection went to a pod is read from kube-proxy's DNAT counters.
Times are printed at the end, never asserted.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from components.node.buildkitd_toml import gc_limits
from harness.hosts import ROOT, Pem, https_get, need, openssl_pki, run
from harness.registries import Registries, running_registries
from harness.stack import Stack, file_backend, running_stack
from harness.versions import versions_env
from tests.k8s.cluster import (
    NAMESPACE,
    NODE_HOSTS,
    Cluster,
    busybox_layout,
    cache_dockerfile,
    routed_to_pod,
    running_cluster,
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
#: the registry the nodes push to: on the cluster's bridge, which the pods reach as their gateway
REGISTRY = "10.79.0.1:5471"
#: the previous Kubernetes program: the merge that first applied it through the real provider
#: (6bbdb6d, issue 24 item 1); from it to this code only the builder's create script changed
BASELINE = "6bbdb6d"
#: steps that would make a new StatefulSet (and so could lose track of its PVC)
REPLACING = {"replace", "create-replacement", "delete-replaced", "create", "delete", "discard"}
STATEFULSET = "kubernetes:apps/v1:StatefulSet"


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
    registries: Registries
    #: BASELINE's program, where the stack was created
    baseline: Path
    #: `pulumi up`'s output (stdout + stderr)
    log: str
    timings: dict[str, float]
    layout: str = ""

    def outputs(self) -> dict[str, Any]:
        return self.stack.outputs()

    def env(self) -> dict[str, str]:
        """The builder's environment: the stack's, the client cert of the current outputs, and the
        registry's CA for buildx's own registry calls."""
        o = self.outputs()
        return {**self.stack.env, "BKF_TLS_CA": o["caCert"], "BKF_TLS_CERT": o["clientCert"],
                "BKF_TLS_KEY": o["clientKey"], "SSL_CERT_FILE": self.registries.bundle()}

    def timed_up(self, what: str, config: Path | None = None) -> str:
        t0 = time.monotonic()
        r = self.stack.pulumi("up", "--yes", "--skip-preview", config=config, timeout=900)
        self.timings[what] = time.monotonic() - t0
        return r.stdout + r.stderr

    def busybox(self) -> str:
        if not self.layout:  # one OCI layout for every build
            self.layout = busybox_layout(self.dir / "bb")
        return self.layout

    def build(self, stamp: str, dockerfile: str = DOCKERFILE, *args: str) -> Path:
        """A build through the program's builder; the local output's directory (or the context's, with --push)."""
        ctx, dest = self.dir / f"ctx-{stamp}", self.dir / f"out-{stamp}"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(dockerfile)
        output = list(args) or ["--output", f"type=local,dest={dest}"]
        t0 = time.monotonic()
        run(["docker", "buildx", "build", "--builder", "bkf-k8s-tier", "--progress=plain",
             "--build-context", f"busybox={self.busybox()}", "--build-arg",
             f"STAMP={stamp}", *output, str(ctx)], env=self.env(), timeout=300)
        self.timings[f"build {stamp}"] = time.monotonic() - t0
        return dest if not args else ctx

    def stamps(self, stamp: str) -> list[str]:
        """A build whose RUN appends `stamp` to a cache mount: every stamp the mount holds after it."""
        return (self.build(stamp) / "stamps").read_text().split()

    def uids(self, kind: str, names: list[str]) -> dict[str, str]:
        return {n: self.cluster.get(kind, n)["metadata"]["uid"] for n in names}

    def pods(self) -> dict[str, str]:
        return self.uids("pod", [f"{n}-0" for n in NODE_HOSTS])

    def claims(self) -> dict[str, tuple[str, str]]:
        return {n: (c["metadata"]["uid"], c["spec"]["volumeName"])
                for n in NODE_HOSTS for c in [self.cluster.get("pvc", f"state-{n}-0")]}

    def served_cert(self, node: str) -> dict[str, str]:
        """The server cert the node presents in an mTLS handshake (client cert of the outputs,
        verified against the CA of the outputs): its serial and notBefore."""
        o, d = self.outputs(), self.dir / "mtls"
        d.mkdir(exist_ok=True)
        for name, pem in (("ca", o["caCert"]), ("cert", o["clientCert"]), ("key", o["clientKey"])):
            (d / f"{name}.pem").write_text(pem)
        dial = run(["openssl", "s_client", "-connect", f"{NODE_HOSTS[node]}:{PORT}", "-verify_return_error",
                    "-CAfile", str(d / "ca.pem"), "-cert", str(d / "cert.pem"), "-key", str(d / "key.pem")],
                   input="", timeout=60)
        fields = run(["openssl", "x509", "-noout", "-serial", "-startdate"], input=dial.stdout).stdout
        return dict(line.split("=", 1) for line in fields.splitlines())


def archive(commit: str, dest: Path) -> Path:
    """The program as it was at ``commit`` (git archive), with this checkout's pinned SDKs."""
    dest.mkdir()
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar.stdout, check=True)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    return dest


@pytest.fixture(scope="module")
def up(request: pytest.FixtureRequest) -> Iterator[Up]:
    need("docker", "docker-buildx", "buildctl", "pulumi", "registry", "openssl", "curl", "git")
    kubernetes_plugin()
    # a short path: containerd's shim sockets live under the state dir
    d = Path(tempfile.mkdtemp(prefix="bkf-k8s-up.", dir="/tmp"))
    timings: dict[str, float] = {}
    try:
        with running_cluster(d / "s", d / "images", timings) as cluster, \
                running_registries(d / "registries") as regs:
            regs.sh("ca")
            regs.up("main", REGISTRY)  # after the cluster: its bridge carries the address
            env = {**file_backend(d), "KUBECONFIG": str(cluster.kubeconfig)}
            cfg = stack_yaml(cluster.image_ref)["config"]
            cfg["buildkit-farm:registries"] = {REGISTRY: {"ca": regs.ca.read_text()}}
            old = archive(BASELINE, d / "baseline")
            with running_stack(STACK, d, cfg, env=env, config=d / f"Pulumi.{STACK}.yaml") as stack:
                t0 = time.monotonic()
                # the program makes the builder too (its create script, preflight of every node)
                r = stack.pulumi("up", "--yes", "--skip-preview", cwd=old, timeout=900)
                timings[f"pulumi up ({BASELINE}'s program: objects, awaits, builder)"] = time.monotonic() - t0
                yield Up(d, cluster, stack, regs, old, r.stdout + r.stderr, timings)
    finally:
        shutil.rmtree(d, ignore_errors=True)
        print_past_capture(request, timings_line("tests/k8s pulumi times", timings))


def plan(up: Up) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """This code's preview of the stack: its steps other than `same`, and the change summary."""
    p = json.loads(up.stack.pulumi("preview", "--json", "--diff", timeout=600).stdout)
    return [s for s in p["steps"] if s["op"] != "same"], p["changeSummary"]


def test_a_stack_made_by_the_previous_program_upgrades_without_replacing_a_statefulset_or_pvc(up: Up) -> None:
    sets, claims, pods = up.uids("statefulset", list(NODE_HOSTS)), up.claims(), up.pods()
    steps, summary = plan(up)
    changed = sorted((s["op"], s["urn"].rsplit("::", 1)[-1]) for s in steps)
    print(f"\nupgrade from {BASELINE}: {summary} {changed}")
    assert not [c for c in changed if c[0] in REPLACING], changed
    # what changed since BASELINE, all in place: the builder's create script, and each StatefulSet's
    # await condition (an annotation on the StatefulSet, not on its pod template)
    expected = {("update", "builder-buildx"), *(("update", f"{n}-statefulset") for n in NODE_HOSTS)}
    assert set(changed) == expected, changed
    for s in steps:
        if s["urn"].split("::")[-2].endswith(STATEFULSET):
            assert set(s.get("detailedDiff") or {}) == {"metadata.annotations"}, s
    up.timed_up("pulumi up (upgrade to this code)")
    after = plan(up)[0]
    assert after == [], [(s["urn"].rsplit("::", 1)[-1], s.get("detailedDiff"), s.get("diffReasons")) for s in after]
    assert up.uids("statefulset", list(NODE_HOSTS)) == sets
    assert up.claims() == claims
    assert up.pods() == pods  # nothing the pods run changed, so they did not restart


#: tests/k8s/metadata_program: StatefulSets awaited as the nodes are, whose only change is a label
METADATA_PROGRAM = Path(__file__).parent / "metadata_program"
METADATA_SETS, METADATA_ROUNDS = 4, 2


def test_a_change_of_a_statefulsets_metadata_only_is_recorded_as_applied(up: Up) -> None:
    """pod.await_annotations through the real provider: after each `up` that only relabels the
    StatefulSets, a preview is clean. Without the digest condition (the replica conditions alone) a
    run of 6 StatefulSets x 3 relabels saw 7 of the 18 recorded as before (the provider's shared
    watch handed back the old object), as the upgrade test above once saw on a node."""
    def cfg(label: str) -> dict[str, Any]:
        return {"bkf-k8s-metadata:namespace": "bkf-k8s-metadata", "bkf-k8s-metadata:count": METADATA_SETS,
                "bkf-k8s-metadata:label": label}

    with running_stack("metadata", up.dir, cfg("v0"), env=up.stack.env, config=up.dir / "Pulumi.metadata.yaml",
                       project=METADATA_PROGRAM) as stack:
        for r in range(METADATA_ROUNDS + 1):
            stack.write_config(cfg(f"v{r}"))
            t0 = time.monotonic()
            stack.pulumi("up", "--yes", "--skip-preview", timeout=600)
            what = "created" if r == 0 else f"relabelled {r}"
            up.timings[f"pulumi up (metadata program, {what})"] = time.monotonic() - t0
            steps = json.loads(stack.pulumi("preview", "--json", "--diff", timeout=600).stdout)["steps"]
            stale = [(s["urn"].rsplit("::", 1)[-1], s.get("detailedDiff")) for s in steps if s["op"] != "same"]
            assert stale == [], f"round {r}: {stale}"
            labels = {up.cluster.get("statefulset", f"s{i}", "bkf-k8s-metadata")["metadata"]["labels"]["bkf-test/label"]
                      for i in range(METADATA_SETS)}
            assert labels == {f"v{r}"}
    assert stack.down is not None and stack.down.returncode == 0, stack.down
    assert not up.cluster.exists("namespace", "bkf-k8s-metadata")  # the provider waited for its deletion


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
    assert f"tcp://{NODE_HOSTS['amd64-1']}:{PORT}" in made.stdout, made.stdout
    t0 = time.monotonic()
    out = run(["bash", "-c", up.outputs()["buildxCreateScript"]], env=up.env(), timeout=300)
    up.timings["builder created again (program's script)"] = time.monotonic() - t0
    for node, host in NODE_HOSTS.items():
        assert f"preflight: node {node} (tcp://{host}:{PORT}) is up and builds linux/amd64" in out.stdout, out.stdout
    assert "builder bkf-k8s-tier ready" in out.stdout, out.stdout
    # the script's preflight dialled both nodes: the build's own connections come on top
    before = routed_to_pod(up.cluster, "amd64-1", PORT)
    assert up.stamps("up") == ["up"]
    assert routed_to_pod(up.cluster, "amd64-1", PORT) > before, "the build did not go through node amd64-1's Service"


def test_the_builder_pushes_a_two_platform_image_to_the_registry(up: Up) -> None:
    # make farm's sample (local/sample/Dockerfile: a busybox rootfs per architecture from Debian,
    # no registry) for both platforms. The cluster has no arm64 node (docs/kubernetes.md), so no
    # node claims linux/arm64 and buildx sends it to a node whose BuildKit lists it: the amd64 pod
    # runs its RUN under QEMU through the host's binfmt_misc (registered as make farm registers it)
    run(["bash", str(ROOT / "local/testhosts.sh"), "binfmt"])
    ref, meta = f"{REGISTRY}/bkf/k8s-tier:push", up.dir / "push.json"
    ctx, out = up.dir / "ctx-push", up.dir / "out-push"
    ctx.mkdir()
    shutil.copy(ROOT / "local/sample/Dockerfile", ctx / "Dockerfile")
    run(["bash", str(ROOT / "local/rootfs.sh"), str(ctx)])
    t0 = time.monotonic()
    run(["docker", "buildx", "build", "--builder", "bkf-k8s-tier", "--progress=plain", "--build-arg", "BUST=k8s-push",
         "--platform", "linux/amd64,linux/arm64", "--metadata-file", str(meta), "--output", f"type=local,dest={out}",
         "--output", f"type=image,name={ref},push=true", str(ctx)], env=up.env(), timeout=300)
    up.timings["build push (linux/amd64 + linux/arm64)"] = time.monotonic() - t0
    built = {p: (out / p / "built-on").read_text().split() for p in ("linux_amd64", "linux_arm64")}
    print(f"tests/k8s pushed {ref}: {built}")
    assert built["linux_amd64"][:2] == ["platform=linux/amd64", "machine=x86_64"], built
    assert built["linux_arm64"][:2] == ["platform=linux/arm64", "machine=aarch64"], built  # under QEMU
    accept = ", ".join(["application/vnd.oci.image.index.v1+json",
                        "application/vnd.docker.distribution.manifest.list.v2+json"])
    body, digest = up.registries.get(REGISTRY, "bkf/k8s-tier/manifests/push", accept)
    assert digest == json.loads(meta.read_text())["containerimage.digest"], digest
    platforms = {f"{m['platform']['os']}/{m['platform']['architecture']}" for m in body["manifests"]}
    assert {"linux/amd64", "linux/arm64"} <= platforms, body
    # pushed by a pod (10.79.0.100-199 on the cluster's bridge), not by this machine
    pushers = re.findall(r'^(10\.79\.0\.1\d\d) .*"PUT /v2/bkf/k8s-tier/manifests/', up.registries.log("main"), re.M)
    assert pushers, up.registries.log("main")[-3000:]


def farm_pki(up: Up) -> tuple[Path, Pem]:
    """The stack's CA and its client cert (the outputs a Prometheus would be given), as files."""
    o, d = up.outputs(), up.dir / "pki"
    d.mkdir(exist_ok=True)
    for name, value in (("ca.pem", o["caCert"]), ("client.pem", o["clientCert"]), ("client-key.pem", o["clientKey"])):
        (d / name).write_text(value)
    return d / "ca.pem", Pem(d / "client.pem", d / "client-key.pem")


def every_pod_serves_metrics_to_the_farms_client_cert(up: Up, request: pytest.FixtureRequest) -> None:
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
    before = routed_to_pod(up.cluster, "amd64-1", METRICS_PORT)
    assert https_get(NODE_HOSTS["amd64-1"], METRICS_PORT, ca, client, "/debug/pprof/")[0] == 404
    # through the Service's metrics port to the pod (kube-proxy's DNAT rule for it took it)
    assert routed_to_pod(up.cluster, "amd64-1", METRICS_PORT) == before + 1, \
        "the scrape did not go through the Service's metrics port"


def test_metrics_on_adds_the_sidecar_and_every_pod_serves_the_farms_client_cert(
        up: Up, request: pytest.FixtureRequest) -> None:
    # metrics.port on an existing stack (BASELINE's program knew neither key): the sidecar joins each
    # pod, the PVCs stay
    claims, cfg = up.claims(), up.stack.read_config()
    up.stack.write_config({**cfg, "buildkit-farm:metrics": {"port": METRICS_PORT},
                           "buildkit-farm:kubernetes": {**cfg["buildkit-farm:kubernetes"],
                                                        "metricsImage": up.cluster.python_ref}})
    up.timed_up("pulumi up (metrics on: sidecar added, pods rolled)")
    assert up.claims() == claims
    # a build through amd64-1 since its restart, for BuildKit's own build series
    up.build("metrics", "FROM busybox\nARG STAMP\nRUN echo \"$STAMP\" > /m\n")
    every_pod_serves_metrics_to_the_farms_client_cert(up, request)


def test_a_scrape_without_the_farms_client_cert_or_with_another_cas_is_refused(up: Up) -> None:
    ca, _ = farm_pki(up)
    _, _, rogue = openssl_pki(up.dir / "rogue", {}, ca_name="rogue")
    for node, host in NODE_HOSTS.items():
        for client in (None, rogue["ci"]):
            routed = routed_to_pod(up.cluster, node, METRICS_PORT)
            # the handshake fails (TLS 1.3: the server's alert arrives on the first read)
            with pytest.raises((ssl.SSLError, ConnectionError)):
                https_get(host, METRICS_PORT, ca, client)
            # refused by the pod's endpoint, not by a Service that had nowhere to send it
            assert routed_to_pod(up.cluster, node, METRICS_PORT) == routed + 1


def test_a_preview_right_after_up_is_clean(up: Up) -> None:
    t0 = time.monotonic()
    r = up.stack.pulumi("preview", "--expect-no-changes", check=False, timeout=600)
    up.timings["pulumi preview --expect-no-changes"] = time.monotonic() - t0
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]


def test_a_node_setting_rolls_the_pods_and_keeps_the_pvcs_and_the_cache(up: Up) -> None:
    pods, claims, certs = up.pods(), up.claims(), up.outputs()["clientCert"]
    up.stack.write_config({**up.stack.read_config(), "buildkit-farm:buildkit": {
        **up.stack.read_config()["buildkit-farm:buildkit"], "historyMaxEntries": 300}})
    up.timed_up("pulumi up (historyMaxEntries: pods rolled)")
    after = up.pods()
    assert all(after[p] != pods[p] for p in pods), (pods, after)
    assert up.claims() == claims
    assert up.outputs()["clientCert"] == certs  # a config change renews nothing
    toml = up.cluster.exec("amd64-1-0", "cat", "/home/user/.config/buildkit/buildkitd.toml").stdout
    assert "maxEntries = 300" in toml, toml
    assert up.stamps("roll") == ["up", "roll"]


def test_a_cert_renewal_rolls_the_pods_with_the_new_cert_and_no_manual_step(up: Up) -> None:
    pods, claims = up.pods(), up.claims()
    served = {n: up.served_cert(n) for n in NODE_HOSTS}
    pki = up.stack.read_config()["buildkit-farm:pki"]
    # a new lifetime: every leaf is issued again (the CA's renewal window moves in place)
    up.stack.write_config({**up.stack.read_config(), "buildkit-farm:pki": {**pki, "validityHours": 2000}})
    up.timed_up("pulumi up (certs renewed: pods rolled)")
    after = up.pods()
    assert all(after[p] != pods[p] for p in pods), (pods, after)
    assert up.claims() == claims
    for node in NODE_HOSTS:
        now = up.served_cert(node)  # verified against the CA, with the renewed client cert
        assert now["serial"] != served[node]["serial"], (node, served[node], now)
        secret = up.cluster.get("secret", f"{node}-tls")["data"]["cert.pem"]
        pem = run(["base64", "-d"], input=secret).stdout
        assert run(["openssl", "x509", "-noout", "-serial"], input=pem).stdout.strip() == f"serial={now['serial']}"
    # the builder took the renewed client cert by itself: it still builds, with the cache
    assert up.stamps("renewed") == ["up", "roll", "renewed"]


def test_a_protected_volume_refuses_destroy_and_keeps_the_namespace_and_the_caches(up: Up) -> None:
    up.stack.write_config({**up.stack.read_config(), "buildkit-farm:volume": {"sizeGb": 20, "protect": True}})
    up.timed_up("pulumi up (volume.protect true)")
    claims = up.claims()
    t0 = time.monotonic()
    r = up.stack.pulumi("destroy", "--yes", "--skip-preview", check=False, timeout=900)
    up.timings["pulumi destroy (refused at the protected namespace)"] = time.monotonic() - t0
    out = r.stdout + r.stderr
    assert r.returncode != 0 and re.search(r"Namespace::farm-namespace\" cannot be deleted\s+because it is protected",
                                           out), out[-3000:]
    # what the docs say it keeps: the namespace, and in it the PVCs (the StatefulSets retain them)
    assert up.cluster.get("namespace", NAMESPACE, None)["status"]["phase"] == "Active"
    assert not up.cluster.exists("statefulset", "amd64-1")  # the rest was deleted before the refusal
    assert up.claims() == claims
    # unprotected, `up` makes the rest again: the new pods bind the same claims, with their caches
    up.stack.write_config({**up.stack.read_config(), "buildkit-farm:volume": {"sizeGb": 20, "protect": False}})
    up.timed_up("pulumi up (volume.protect false: the deleted objects again)")
    assert up.claims() == claims
    assert up.stamps("protected") == ["up", "roll", "renewed", "protected"]


def test_destroy_removes_the_namespace_and_everything_in_it(up: Up) -> None:
    t0 = time.monotonic()
    r = up.stack.pulumi("destroy", "--yes", "--skip-preview", check=False, timeout=900)
    up.timings["pulumi destroy"] = time.monotonic() - t0
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    gone = up.cluster.kubectl("get", "namespace", NAMESPACE, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr, gone.stdout + gone.stderr
    pvcs = up.cluster.kubectl("get", "pvc", "-A", "-o", "name", check=False)
    assert pvcs.stdout.strip() == "", pvcs.stdout
