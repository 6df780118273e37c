"""The Kubernetes backend on a real single-node cluster (local/k8s.sh: built from Go modules).

Over 300 lines on purpose: one module-scoped cluster (~15 s up, ~15 s down) serves every check.

The objects applied are exactly the ones the program registers for a Kubernetes stack
(tests/support/rendered.py: __main__.py under mocks, real certs from the tls plugin), with the
image pinned by config to the locally built rootless BuildKit image. Proves: server-side
admission with Pod Security on at the level the docs claim; each node's pod Ready under its
probes, rootless (uid 1000), its PVC bound; a build through the program's buildx builder (its
create script, endpoints and certs) with a cache mount; a pod delete and a rolling restart after a
config change keep the PVC and the cache mount's contents; the preStop drain lets a running build
finish; a client without the cert is refused; the Services are routed by the cluster's kube-proxy,
whose rules stay in its own network namespace.

Clients dial each node's Service at its ClusterIP (tests/k8s/cluster.py; local/k8s.sh).
Set-up times are printed at the end, never asserted.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.backends.kubernetes import manifests as m
from harness.hosts import Pem, buildctl, need, run
from tests.k8s.cluster import (
    NAMESPACE,
    NODE_HOSTS,
    ROOT,
    STORAGE_CLASS,
    Cluster,
    busybox_layout,
    cache_dockerfile,
    dnat_counts,
    in_svc_netns,
    kube_proxy_chains,
    poll,
    ready_endpoints,
    root_netns_chains,
    running_cluster,
    stack_yaml,
    wait_routed,
)
from tests.support import rendered
from tests.support.figures import print_past_capture, timings_line

pytestmark = pytest.mark.k8s

PORT = 1234
CACHE_DOCKERFILE = cache_dockerfile("bkf-k8s-tier")
SLOW_BUILD_S = 20
SLOW_DOCKERFILE = f"""\
FROM busybox
ARG STAMP
RUN echo "slow build $STAMP running" && sleep {SLOW_BUILD_S} && echo "$STAMP" > /done
FROM scratch
COPY --from=0 /done /done
"""


@dataclass
class Tier:
    dir: Path
    cluster: Cluster
    pki: rendered.PkiState
    stack: rendered.Rendered
    env: dict[str, str]
    ca: Path
    client: Pem
    busybox: str  # oci-layout://<dir>@<digest>
    timings: dict[str, float]
    #: what the API said while admitting the objects (warnings), besides the applied lines
    applied: tuple[str, str]

    def render(self, **kubernetes: Any) -> rendered.Rendered:
        y = stack_yaml(self.cluster.image_ref, **kubernetes)
        return rendered.render(rendered.stack_config(y), pki=self.pki)


@pytest.fixture(scope="module")
def tier(request: pytest.FixtureRequest) -> Iterator[Tier]:
    need("docker", "docker-buildx", "buildctl")
    # a short path: containerd's shim sockets live under the state dir
    d = Path(tempfile.mkdtemp(prefix="bkf-k8s.", dir="/tmp"))
    timings: dict[str, float] = {}
    try:
        with running_cluster(d / "s", d / "images", timings) as cluster:
            t0 = time.monotonic()
            pki: rendered.PkiState = {}
            stack = rendered.render(rendered.stack_config(stack_yaml(cluster.image_ref)), pki=pki)
            timings["program rendered under mocks"] = time.monotonic() - t0
            t0 = time.monotonic()
            applied = cluster.apply(stack.objects)
            for node in NODE_HOSTS:
                cluster.wait_ready(f"{node}-0")
            timings["objects applied, pods Ready"] = time.monotonic() - t0
            for node in NODE_HOSTS:  # and routed: kube-proxy's rule comes after readiness
                wait_routed(cluster, node, PORT)
            timings["pods routed by kube-proxy"] = time.monotonic() - t0
            (d / "certs").mkdir()
            ca, cert, key = d / "certs" / "ca.pem", d / "certs" / "cert.pem", d / "certs" / "key.pem"
            ca.write_text(stack.outputs["caCert"])
            cert.write_text(stack.outputs["clientCert"])
            key.write_text(stack.outputs["clientKey"])
            env = {**os.environ, "BUILDX_CONFIG": str(d / "buildx"), "BKF_TLS_CA": stack.outputs["caCert"],
                   "BKF_TLS_CERT": stack.outputs["clientCert"], "BKF_TLS_KEY": stack.outputs["clientKey"]}
            t0 = time.monotonic()
            # the program's own builder script: preflight of every node, then the builder
            out = run(["bash", "-c", stack.outputs["buildxCreateScript"]], env=env, timeout=300)
            timings["builder created (program's script)"] = time.monotonic() - t0
            assert "builder bkf-k8s-tier ready" in out.stdout, out.stdout
            yield Tier(d, cluster, pki, stack, env, ca, Pem(cert, key), busybox_layout(d), timings, applied)
    finally:
        shutil.rmtree(d, ignore_errors=True)
        print_past_capture(request, timings_line("tests/k8s times", timings))


def build(t: Tier, dockerfile: str, stamp: str, out: Path) -> subprocess.CompletedProcess[str]:
    ctx = out.parent / f"ctx-{out.name}"
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    return run(["docker", "buildx", "build", "--builder", "bkf-k8s-tier", "--progress=plain",
                "--build-context", f"busybox={t.busybox}", "--build-arg", f"STAMP={stamp}",
                "--output", f"type=local,dest={out}", str(ctx)], env=t.env, timeout=300)


def cache_build(t: Tier, stamp: str) -> list[str]:
    """A build whose RUN step appends to a cache mount; the mount's lines afterwards."""
    out = t.dir / "out" / stamp
    build(t, CACHE_DOCKERFILE, stamp, out)
    return (out / "stamps").read_text().split()


def pod_of(t: Tier, node: str) -> dict[str, Any]:
    return t.cluster.get("pod", f"{node}-0")


def claim(t: Tier, node: str) -> dict[str, Any]:
    return t.cluster.get("pvc", f"state-{node}-0")


# ----------------------------------------------------------------------------- admission


def test_every_rendered_object_is_admitted_server_side(tier: Tier) -> None:
    kinds = sorted(o["kind"] for o in tier.stack.objects)
    lines, warnings = tier.applied
    assert lines.count("serverside-applied") == len(tier.stack.objects), lines
    # no deprecation, unknown-field or Pod Security warning from the API
    assert warnings == "", warnings
    assert kinds == sorted(["Namespace", "NetworkPolicy", *["Service", "Secret", "ConfigMap", "StatefulSet"] * 2])
    for o in tier.stack.objects:
        md = o["metadata"]
        live = tier.cluster.get(o["kind"], md["name"], md.get("namespace"))
        assert live["metadata"]["uid"], md["name"]
        # what we sent is what the API kept (server-side apply: our field manager owns it)
        managers = {f["manager"] for f in live["metadata"].get("managedFields", [])}
        assert "bkf-k8s-tier" in managers, (md["name"], managers)
    sts = tier.cluster.get("statefulset", "amd64-1")
    sent = tier.stack.of_kind("StatefulSet")[0]["spec"]["template"]["spec"]["containers"][0]
    assert sts["spec"]["template"]["spec"]["containers"][0]["securityContext"] == sent["securityContext"]


def test_pod_security_is_enforced_at_the_level_the_docs_claim(tier: Tier) -> None:
    ns = tier.cluster.get("namespace", NAMESPACE, None)
    level = ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"]
    assert level == "privileged"
    assert "Pod Security `privileged`" in (ROOT / "docs" / "kubernetes.md").read_text()
    # Admission is really on: the node's pod as its StatefulSet made it (live, with its claim's
    # volume) is refused one level down (baseline) and admitted in the farm's namespace (both
    # server-side dry runs).
    live = tier.cluster.get("pod", "amd64-1-0")
    spec = {k: v for k, v in live["spec"].items() if k != "nodeName"}
    tier.cluster.kubectl("create", "namespace", "bkf-k8s-baseline")
    tier.cluster.kubectl("label", "namespace", "bkf-k8s-baseline", "pod-security.kubernetes.io/enforce=baseline")
    try:
        for ns_name, ok in ((NAMESPACE, True), ("bkf-k8s-baseline", False)):
            pod = {"apiVersion": "v1", "kind": "Pod", "spec": spec,
                   "metadata": {"name": "psa-probe", "namespace": ns_name, "labels": live["metadata"]["labels"]}}
            r = tier.cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
            assert (r.returncode == 0) == ok, (ns_name, r.stdout, r.stderr)
            if not ok:
                assert 'violates PodSecurity "baseline:latest"' in r.stderr, r.stderr
                assert "seccompProfile" in r.stderr, r.stderr
    finally:
        tier.cluster.kubectl("delete", "namespace", "bkf-k8s-baseline", "--wait=false", check=False)


# ----------------------------------------------------------------------------- pods


@pytest.mark.parametrize("node", list(NODE_HOSTS))
def test_each_node_pod_is_ready_rootless_with_its_pvc_bound(tier: Tier, node: str) -> None:
    pod = pod_of(tier, node)
    conds = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conds["Ready"] == "True"
    (cs,) = pod["status"]["containerStatuses"]
    assert cs["ready"] and cs["started"] and cs["image"].startswith("localhost/buildkit-farm/buildkit")
    # rootless: the container's processes (rootlesskit, PID 1) run as uid 1000, not root
    ids = tier.cluster.exec(f"{node}-0", "sh", "-c", "id -u; grep ^Uid: /proc/1/status").stdout.split()
    assert ids == ["1000", "Uid:", "1000", "1000", "1000", "1000"], ids
    pvc = claim(tier, node)
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["spec"]["storageClassName"] == STORAGE_CLASS
    pv = tier.cluster.get("pv", pvc["spec"]["volumeName"], None)
    # the cache lives on the PV: buildkitd's state (its lock, its databases) is in the PV's directory
    state = Path(pv["spec"]["local"]["path"])
    assert (state / "buildkitd.lock").exists(), sorted(p.name for p in state.iterdir())


# ----------------------------------------------------------------------------- builds


def test_a_build_through_the_programs_builder_uses_a_cache_mount(tier: Tier) -> None:
    assert cache_build(tier, "first") == ["first"]
    assert cache_build(tier, "second") == ["first", "second"]
    # the builder's node 0 got the builds through kube-proxy's rule for its Service's endpoint
    routed = {ep for ep, n in dnat_counts("amd64-1").items() if n}
    assert routed == {f"{pod_of(tier, 'amd64-1')['status']['podIP']}:{PORT}"}, dnat_counts("amd64-1")


def test_services_are_routed_by_kube_proxy_in_its_own_namespace_only(tier: Tier) -> None:
    nat = in_svc_netns("iptables-save", "-t", "nat").stdout
    for node, host in NODE_HOSTS.items():
        # the Service's real ClusterIP (pinned by the cluster's policy) is what the config dials
        svc = tier.cluster.get("service", node)
        assert svc["spec"]["clusterIP"] == host and svc["spec"]["type"] == "ClusterIP", svc["spec"]
        # and kube-proxy's namespace holds its rule
        rules = [r for r in nat.splitlines() if r.startswith("-A KUBE-SERVICES ") and f"-d {host}/32" in r]
        assert len(rules) == 1 and f"{NAMESPACE}/{node}:{m.PORT_NAME} cluster IP" in rules[0], nat
    # the root namespace (this shared machine's firewall) has none of kube-proxy's chains
    assert not kube_proxy_chains(root_netns_chains()), root_netns_chains()


@pytest.mark.parametrize("node", list(NODE_HOSTS))
def test_a_client_without_the_cert_is_refused(tier: Tier, node: str) -> None:
    addr, name = f"tcp://{NODE_HOSTS[node]}:{PORT}", NODE_HOSTS[node]
    ok = buildctl(addr, name, tier.ca, tier.client, "debug", "workers", timeout=60)
    assert "linux/amd64" in ok.stdout
    refused = buildctl(addr, name, tier.ca, None, "debug", "workers", check=False, timeout=60)
    assert refused.returncode != 0
    # the server's alert, or (through kube-proxy's NAT the server's close can beat the client's read
    # of the alert) its close right after the handshake, on the first write
    assert any(e in refused.stderr for e in ("certificate required", "bad certificate", "write: broken pipe",
                                             "connection reset by peer")), refused.stderr


def test_deleting_the_pod_keeps_the_pvc_and_the_cache(tier: Tier) -> None:
    stamps = cache_build(tier, "before-delete")
    before, pvc = pod_of(tier, "amd64-1"), claim(tier, "amd64-1")
    tier.cluster.kubectl("delete", "pod", "amd64-1-0", "-n", NAMESPACE, "--wait=false")
    tier.cluster.wait_gone("amd64-1-0", before["metadata"]["uid"])
    after = tier.cluster.wait_ready("amd64-1-0")
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    again = claim(tier, "amd64-1")
    assert (again["metadata"]["uid"], again["spec"]["volumeName"]) == (pvc["metadata"]["uid"],
                                                                        pvc["spec"]["volumeName"])
    assert cache_build(tier, "after-delete") == [*stamps, "after-delete"]


def test_a_rolling_restart_after_a_config_change_keeps_the_pvc_and_the_cache(tier: Tier) -> None:
    stamps = cache_build(tier, "before-rollout")
    before, pvc = pod_of(tier, "amd64-1"), claim(tier, "amd64-1")
    y = stack_yaml(tier.cluster.image_ref)
    y["config"]["buildkit-farm:buildkit"]["historyMaxEntries"] = 150
    new = rendered.render(rendered.stack_config(y), pki=tier.pki)
    (cm,) = [o for o in new.of_kind("ConfigMap") if o["metadata"]["name"] == "amd64-1-config"]
    toml = cm["data"]["buildkitd.toml"]
    assert "maxEntries = 150" in toml
    # same PKI: the certs (and the builder's client cert) stay valid
    assert new.outputs["caCert"] == tier.stack.outputs["caCert"]
    lines, warnings = tier.cluster.apply(new.objects)
    assert "configmap/amd64-1-config serverside-applied" in lines and warnings == "", (lines, warnings)
    # the config change reached the pod template (what makes the StatefulSet roll)
    sts = tier.cluster.get("statefulset", "amd64-1")
    assert sts["spec"]["template"]["metadata"]["annotations"][m.CONFIG_CHECKSUM] == hashlib.sha256(
        toml.encode()).hexdigest()
    tier.cluster.kubectl("rollout", "status", "statefulset/amd64-1", "-n", NAMESPACE, "--timeout=300s",
                         timeout=320)
    tier.cluster.wait_gone("amd64-1-0", before["metadata"]["uid"])
    after = tier.cluster.wait_ready("amd64-1-0")
    assert after["metadata"]["annotations"][m.CONFIG_CHECKSUM] == hashlib.sha256(toml.encode()).hexdigest()
    assert after["metadata"]["annotations"][m.CONFIG_CHECKSUM] != before["metadata"]["annotations"][m.CONFIG_CHECKSUM]
    live_toml = tier.cluster.exec("amd64-1-0", "cat", "/home/user/.config/buildkit/buildkitd.toml").stdout
    assert "maxEntries = 150" in live_toml
    again = claim(tier, "amd64-1")
    assert (again["metadata"]["uid"], again["spec"]["volumeName"]) == (pvc["metadata"]["uid"],
                                                                        pvc["spec"]["volumeName"])
    assert cache_build(tier, "after-rollout") == [*stamps, "after-rollout"]


def test_the_prestop_drain_lets_a_running_build_finish(tier: Tier) -> None:
    """Deleting the pod mid-build: the preStop hook runs (its marker exists, readiness fails, the
    Service stops routing new connections) while buildkitd still serves (SIGTERM is held back),
    and the running build finishes before the old pod goes."""
    stamps = cache_build(tier, "before-drain")
    before = pod_of(tier, "amd64-1")
    pod_ip, grace = before["status"]["podIP"], before["spec"]["terminationGracePeriodSeconds"]
    ctx = tier.dir / "slow"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(SLOW_DOCKERFILE)
    out = tier.dir / "out" / "slow"
    proc = subprocess.Popen(["docker", "buildx", "build", "--builder", "bkf-k8s-tier", "--progress=plain",
                             "--build-context", f"busybox={tier.busybox}", "--build-arg", "STAMP=drained",
                             "--output", f"type=local,dest={out}", str(ctx)], env=tier.env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    log: list[str] = []
    for line in proc.stdout:
        log.append(line)
        if "slow build drained running" in line:
            break
    else:
        pytest.fail("the slow build never started:\n" + "".join(log[-30:]))
    t0 = time.monotonic()
    tier.cluster.kubectl("delete", "pod", "amd64-1-0", "-n", NAMESPACE, "--wait=false")
    # during the drain (the build sleeps on):
    # (the kubelet starts the hook a moment after the delete)
    poll("the preStop hook's drain marker", lambda: tier.cluster.exec(
        "amd64-1-0", "sh", "-c", f"test -e {m.DRAIN_MARKER} && echo draining", check=False).stdout.strip()
        == "draining", timeout=30)
    poll("the endpoint no longer ready", lambda: not ready_endpoints(tier.cluster, "amd64-1"), timeout=30)
    # buildkitd itself has not been told to stop: a new client connection to the pod still works
    served = buildctl(f"tcp://{pod_ip}:{PORT}", NODE_HOSTS["amd64-1"], tier.ca, tier.client, "debug", "workers",
                      check=False, timeout=30)
    assert served.returncode == 0 and "linux/amd64" in served.stdout, served.stderr
    log += proc.stdout.readlines()
    rc = proc.wait(timeout=grace + 60)
    build_done = time.monotonic() - t0
    # when the build ended, the old pod was still there, terminating
    live = tier.cluster.get("pod", "amd64-1-0")
    assert live["metadata"]["uid"] == before["metadata"]["uid"] and live["metadata"].get("deletionTimestamp"), live
    assert rc == 0, "".join(log[-40:])
    assert (out / "done").read_text().strip() == "drained"
    tier.cluster.wait_gone("amd64-1-0", before["metadata"]["uid"], timeout=grace + 60)
    pod_gone = time.monotonic() - t0
    tier.cluster.wait_ready("amd64-1-0")
    tier.timings[f"drain: build done after delete ({SLOW_BUILD_S}s build, grace {grace}s)"] = build_done
    tier.timings["drain: old pod gone after delete"] = pod_gone
    # and the cache mount's contents are still there after this restart too
    assert cache_build(tier, "after-drain") == [*stamps, "after-drain"]
