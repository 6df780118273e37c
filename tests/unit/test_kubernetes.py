"""Kubernetes backend: the whole program under mocks (Pulumi.k8s.yaml), every object
validated offline against the Kubernetes schema, the config keys, and the preStop
drain run for real against a fake buildctl.

Over 300 lines on purpose: one module holds every property of the Kubernetes backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import time
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest

from components import versions
from components.backends.kubernetes import manifests as m
from components.backends.kubernetes import pod
from components.backends.kubernetes.components import load_balancer_address
from components.backends.kubernetes.config import KubernetesFarmConfig, KubernetesSpec
from components.backends.kubernetes.config import KubernetesNodeSpec as NodeSpec
from components.config import ConfigError, parse_config
from components.node.buildkitd_toml import gc_limits
from components.node.layout import ROOTLESS_LAYOUT
from tests.unit import mockrt

K8S = mockrt.stack_config(mockrt.ROOT / "Pulumi.k8s.yaml")
DEV = mockrt.stack_config(mockrt.ROOT / "Pulumi.dev.yaml")
#: the newest Kubernetes schema kubernetes-validate ships (checked below)
K8S_VERSION = "1.37.0"
NS = "buildkit-farm"
NODES = {"arm64-1": "arm64", "amd64-1": "amd64"}
CIDRS = ["10.20.0.0/16", "203.0.113.0/24"]
KINDS = {"Namespace": 1, "NetworkPolicy": 1, "Service": 2, "Secret": 2, "ConfigMap": 2, "StatefulSet": 2}


def objects(run: mockrt.Run) -> dict[str, dict[str, Any]]:
    """Every Kubernetes object the program registered, by Pulumi name."""
    return {mockrt.short(r.name): mockrt.plain(r.inputs) for r in run.mocks.resources
            if r.typ.startswith("kubernetes:")}


def with_k8s(**changes: Any) -> dict[str, str]:
    return mockrt.with_section(K8S, "kubernetes", **changes)


def raw_k8s_config(**changes: Any) -> dict[str, Any]:
    return {k.split(":", 1)[1]: json.loads(v) if v[:1] in "[{" else v
            for k, v in with_k8s(**changes).items() if k.startswith("buildkit-farm:")}


@pytest.fixture(scope="module")
def run() -> mockrt.Run:
    return mockrt.run_main(K8S, stack="k8s")


@pytest.fixture(scope="module")
def objs(run: mockrt.Run) -> dict[str, dict[str, Any]]:
    return objects(run)


def pod_labels(objs: dict[str, dict[str, Any]], node: str) -> dict[str, str]:
    return objs[f"{node}-statefulset"]["spec"]["template"]["metadata"]["labels"]


def container(objs: dict[str, dict[str, Any]], node: str) -> dict[str, Any]:
    (c,) = objs[f"{node}-statefulset"]["spec"]["template"]["spec"]["containers"]
    return c


# ----------------------------------------------------------------------------- schema


def test_schema_version_is_the_newest_shipped() -> None:
    assert kubernetes_validate.utils.latest_version() == K8S_VERSION


@pytest.mark.parametrize("service_type", ["LoadBalancer", "NodePort", "ClusterIP"])
def test_every_object_validates_against_the_strict_schema(run: mockrt.Run, service_type: str) -> None:
    r = run if service_type == "LoadBalancer" else mockrt.run_main(
        with_k8s(serviceType=service_type, externalHosts=["build.example.com"] if service_type == "NodePort" else []),
        stack="k8s")
    found: dict[str, int] = {}
    for name, obj in objects(r).items():
        # strict: unknown fields (typos) fail too; a missing schema raises, it is not skipped
        assert kubernetes_validate.validate(obj, K8S_VERSION, strict=True) == "1.37", name
        found[obj["kind"]] = found.get(obj["kind"], 0) + 1
    assert found == KINDS


def test_the_validator_rejects_what_the_api_would() -> None:
    spec, node = KubernetesSpec(), NodeSpec(name="arm64-1", platform="linux/arm64")
    sts = pod.statefulset_manifest(spec, node, image="x", buildkit_port=1234, volume_gb=20, drain_timeout_s=600,
                                 config_sha256="0", tls_sha256="0")
    kubernetes_validate.validate(sts, K8S_VERSION, strict=True)
    sts["spec"]["template"]["spec"]["containers"][0]["securityContext"]["seccomp"] = {"type": "Unconfined"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, K8S_VERSION, strict=True)
    svc = m.service_manifest(spec, node, 0, 1234, CIDRS)
    svc["spec"]["ports"][0]["port"] = "1234"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(svc, K8S_VERSION, strict=True)


# ----------------------------------------------------------------------------- structure


def test_names_are_explicit_and_components_parent_their_children(run: mockrt.Run,
                                                                   objs: dict[str, dict[str, Any]]) -> None:
    for name, obj in objs.items():
        md = obj["metadata"]
        assert md["name"] and "generateName" not in md, name
        assert md.get("namespace") == (None if obj["kind"] == "Namespace" else NS), name
        parent = run.registered[name].opts.parent
        assert parent is not None and type(parent).__module__ == "components.backends.kubernetes.components", name
        assert name.startswith(f"{parent._name}-"), (name, parent._name)
    components = {mockrt.short(r.name): r.typ for r in run.mocks.resources
                  if r.typ.startswith("buildkit-farm:index:Kubernetes")}
    assert components == {
        "farm": "buildkit-farm:index:KubernetesFarmNamespace",
        "arm64-1-address": "buildkit-farm:index:KubernetesNodeAddress",
        "amd64-1-address": "buildkit-farm:index:KubernetesNodeAddress",
        "arm64-1": "buildkit-farm:index:KubernetesNode",
        "amd64-1": "buildkit-farm:index:KubernetesNode",
    }


def test_namespace_pod_security_and_protection(run: mockrt.Run, objs: dict[str, dict[str, Any]]) -> None:
    labels = objs["farm-namespace"]["metadata"]["labels"]
    assert objs["farm-namespace"]["metadata"]["name"] == NS
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "privileged"
    # deleting the namespace deletes the cache PVCs: volume.protect guards it
    assert run.registered["farm-namespace"].opts.protect is True
    unprotected = mockrt.run_main({**K8S, "buildkit-farm:volume": json.dumps({"sizeGb": 50, "protect": False})},
                                  stack="k8s")
    assert unprotected.registered["farm-namespace"].opts.protect is False


def test_network_policy(objs: dict[str, dict[str, Any]]) -> None:
    np = objs["farm-network-policy"]["spec"]
    assert np["policyTypes"] == ["Ingress", "Egress"]
    for node in NODES:
        assert np["podSelector"]["matchLabels"].items() <= pod_labels(objs, node).items()
    (ingress,) = np["ingress"]
    assert ingress["from"] == [{"ipBlock": {"cidr": c}} for c in CIDRS]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 1234}]
    (egress,) = np["egress"]
    assert egress["to"][0] == {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}
    assert all("ports" not in e for e in np["egress"])


def test_each_service_selects_exactly_its_nodes_pod(objs: dict[str, dict[str, Any]]) -> None:
    for node in NODES:
        svc = objs[f"{node}-address-service"]
        assert svc["metadata"]["name"] == node
        assert svc["metadata"]["annotations"] == {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
        spec = svc["spec"]
        assert spec["type"] == "LoadBalancer"
        for other in NODES:
            selected = spec["selector"].items() <= pod_labels(objs, other).items()
            assert selected == (other == node), (node, other)
        assert spec["ports"] == [{"name": "buildkitd", "protocol": "TCP", "port": 1234, "targetPort": 1234}]
        assert spec["externalTrafficPolicy"] == "Local"
        assert spec["loadBalancerSourceRanges"] == CIDRS
        sts = objs[f"{node}-statefulset"]["spec"]
        assert sts["serviceName"] == node and sts["replicas"] == 1
        assert container(objs, node)["ports"] == [{"name": "buildkitd", "containerPort": 1234, "protocol": "TCP"}]


# ----------------------------------------------------------------------------- addresses and certs


def lb_ip(run: mockrt.Run, node: str) -> str:
    ingress = run.named(f"{node}-address-service")
    return mockrt._fake_ip(mockrt.short(ingress.name))


def test_load_balancer_addresses_and_server_cert_sans(run: mockrt.Run) -> None:
    nodes = {n["name"]: n for n in run.values["nodes"]}
    assert list(nodes) == list(NODES)
    for node in NODES:
        ip = lb_ip(run, node)
        assert nodes[node]["endpoint"] == f"tcp://{ip}:1234" and nodes[node]["serverName"] == ip
        csr = run.named(f"pki-server-{node}-csr").inputs
        assert csr["ipAddresses"] == [ip]
        extra = ["amd64-1.build.example.com"] if node == "amd64-1" else []
        assert csr["dnsNames"] == [node, f"{node}.{NS}", f"{node}.{NS}.svc", f"{node}.{NS}.svc.cluster.local",
                                   *extra]
    assert run.values["endpoints"] == [f"tcp://{lb_ip(run, n)}:1234" for n in NODES]


def test_node_port_endpoints_are_fixed_per_node() -> None:
    r = mockrt.run_main(with_k8s(serviceType="NodePort", nodePortBase=30100,
                                 externalHosts=["build.example.com", "192.0.2.7"]), stack="k8s")
    assert r.values["endpoints"] == ["tcp://build.example.com:30100", "tcp://build.example.com:30101"]
    objs = objects(r)
    for i, node in enumerate(NODES):
        spec = objs[f"{node}-address-service"]["spec"]
        assert spec["type"] == "NodePort" and "loadBalancerSourceRanges" not in spec
        # Service port = nodePort: <svc>.<ns>.svc:<port> works in the cluster too
        assert spec["ports"] == [{"name": "buildkitd", "protocol": "TCP", "port": 30100 + i,
                                  "targetPort": 1234, "nodePort": 30100 + i}]
        csr = r.named(f"pki-server-{node}-csr").inputs
        assert csr["dnsNames"][0] == "build.example.com" and f"{node}.{NS}.svc" in csr["dnsNames"]
        assert csr["ipAddresses"] == ["192.0.2.7"]


def test_cluster_ip_defaults_to_the_in_cluster_name() -> None:
    r = mockrt.run_main(with_k8s(serviceType="ClusterIP", namespace="builds"), stack="k8s")
    assert r.values["endpoints"] == ["tcp://arm64-1.builds.svc:1234", "tcp://amd64-1.builds.svc:1234"]
    assert [n["serverName"] for n in r.values["nodes"]] == ["arm64-1.builds.svc", "amd64-1.builds.svc"]
    spec = objects(r)["arm64-1-address-service"]["spec"]
    assert "externalTrafficPolicy" not in spec and spec["ports"][0]["port"] == 1234
    csr = r.named("pki-server-arm64-1-csr").inputs
    assert csr["dnsNames"] == ["arm64-1.builds.svc", "arm64-1", "arm64-1.builds",
                               "arm64-1.builds.svc.cluster.local"]


def test_outputs_have_the_same_shape_as_the_aws_stack(run: mockrt.Run) -> None:
    dev = mockrt.run_main(DEV)

    def shape(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: shape(x) for k, x in v.items()} if not set(v) <= {"ci", "dev"} else sorted(v)
        if isinstance(v, list):
            return [shape(x) for x in v]
        return type(v).__name__

    assert set(run.values) == set(dev.values)
    for key in dev.values:
        assert shape(run.values[key]) == shape(dev.values[key]), key
        assert run.secret[key] == dev.secret[key], key
    assert run.values["backend"] == "kubernetes" and run.values["builderName"] == "bkf-k8s"
    assert run.values["platforms"] == ["linux/arm64", "linux/amd64"]
    cmd = run.named("builder-buildx").inputs
    assert all(f"tcp://{lb_ip(run, n)}:1234" in cmd["create"] for n in NODES)


# ----------------------------------------------------------------------------- secrets


def test_tls_secret_holds_the_issued_cert_and_its_key_only_as_a_secret(run: mockrt.Run) -> None:
    for node in NODES:
        raw = run.named(f"{node}-tls").inputs
        files = mockrt.secret_value(raw["stringData"])
        assert files == {
            "ca.pem": mockrt.fake_pem("CERTIFICATE", "pki-ca"),
            "cert.pem": mockrt.fake_pem("CERTIFICATE", f"pki-server-{node}-cert"),
            "key.pem": mockrt.fake_pem("EC PRIVATE KEY", f"pki-server-{node}-key"),
        }
        assert raw["metadata"]["name"] == f"{node}-tls" and raw["type"] == "Opaque"
        assert {"data", "stringData"} <= set(run.registered[f"{node}-tls"].opts.additional_secret_outputs or [])
    leaks = [(r.name, path) for r in run.mocks.resources
             for path, s in mockrt.plaintext_strings(r.inputs) if "PRIVATE KEY" in s]
    assert leaks == []
    for name, value in run.values.items():
        if not run.secret[name]:
            assert "PRIVATE KEY" not in json.dumps(value), name


# ----------------------------------------------------------------------------- the pod


def test_config_map_is_the_rootless_buildkitd_toml(objs: dict[str, dict[str, Any]]) -> None:
    for node, arch in NODES.items():
        cm = objs[f"{node}-config"]
        assert cm["metadata"]["name"] == f"{node}-config"
        t = tomllib.loads(cm["data"]["buildkitd.toml"])
        assert t["root"] == ROOTLESS_LAYOUT.state_dir == "/home/user/.local/share/buildkit"
        assert t["grpc"]["address"] == ["tcp://0.0.0.0:1234", f"unix://{ROOTLESS_LAYOUT.socket_path}"]
        assert t["grpc"]["tls"] == {"cert": ROOTLESS_LAYOUT.cert_path, "key": ROOTLESS_LAYOUT.key_path,
                                    "ca": ROOTLESS_LAYOUT.ca_path}
        oci = t["worker"]["oci"]
        assert oci["platforms"] == [f"linux/{arch}"]
        assert oci["rootless"] is True and oci["noProcessSandbox"] is True and "networkMode" not in oci
        assert oci["maxUsedSpace"] == f"{gc_limits(200).max_used_gb}GB" == "160GB"


def test_statefulset_pod_spec(objs: dict[str, dict[str, Any]]) -> None:
    for node, arch in NODES.items():
        sts = objs[f"{node}-statefulset"]
        assert sts["metadata"]["name"] == node
        pod = sts["spec"]["template"]["spec"]
        c = container(objs, node)
        assert c["image"] == versions.BUILDKIT_ROOTLESS_IMAGE
        assert re.fullmatch(r"moby/buildkit:v\d+\.\d+\.\d+-rootless@sha256:[0-9a-f]{64}", c["image"])
        assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "kubernetes.io/arch": arch}
        assert pod["automountServiceAccountToken"] is False
        sc = c["securityContext"]
        assert (sc["runAsUser"], sc["runAsGroup"], sc["runAsNonRoot"]) == (1000, 1000, True)
        assert sc["seccompProfile"] == {"type": "Unconfined"} and sc["appArmorProfile"] == {"type": "Unconfined"}
        assert "privileged" not in sc
        assert c["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "8", "memory": "16Gi"}}

        # TLS on the command line too, each flag pointing at a file the projected volume provides
        args = c["args"]
        flags = dict(zip(args[::2], args[1::2], strict=False))
        assert args[-1] == "--oci-worker-no-process-sandbox"
        assert [args[i + 1] for i, a in enumerate(args) if a == "--addr"] == [
            f"unix://{ROOTLESS_LAYOUT.socket_path}", "tcp://0.0.0.0:1234"]
        (vol,) = pod["volumes"]
        mount = {mt["name"]: mt for mt in c["volumeMounts"]}[vol["name"]]
        assert mount["readOnly"] is True
        provided = {f"{mount['mountPath']}/{item['path']}": (kind, src["name"], item["key"])
                    for s in vol["projected"]["sources"] for kind, src in s.items() for item in src["items"]}
        assert provided == {
            flags["--config"]: ("configMap", f"{node}-config", "buildkitd.toml"),
            flags["--tlscacert"]: ("secret", f"{node}-tls", "ca.pem"),
            flags["--tlscert"]: ("secret", f"{node}-tls", "cert.pem"),
            flags["--tlskey"]: ("secret", f"{node}-tls", "key.pem"),
        }
        # group-readable for uid 1000 via fsGroup, not world-readable
        assert vol["projected"]["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"] == 1000


def test_cache_is_a_retained_claim_per_node(objs: dict[str, dict[str, Any]]) -> None:
    for node in NODES:
        spec = objs[f"{node}-statefulset"]["spec"]
        assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
        (claim,) = spec["volumeClaimTemplates"]
        assert claim["spec"] == {"accessModes": ["ReadWriteOnce"], "storageClassName": "gp3",
                                 "resources": {"requests": {"storage": "200Gi"}}}
        mounts = {mt["name"]: mt["mountPath"] for mt in container(objs, node)["volumeMounts"]}
        assert mounts[claim["metadata"]["name"]] == "/home/user/.local/share/buildkit"
        assert f"{claim['metadata']['name']}-{node}-0" == m.pvc_name(NodeSpec(name=node, platform="linux/arm64"))


def test_probes_use_the_unix_socket(objs: dict[str, dict[str, Any]]) -> None:
    workers = ["buildctl", "--addr", "unix:///run/user/1000/buildkit/buildkitd.sock", "debug", "workers"]
    c = container(objs, "arm64-1")
    assert c["livenessProbe"]["exec"]["command"] == workers
    assert c["startupProbe"]["exec"]["command"] == workers
    sh, flag, script = c["readinessProbe"]["exec"]["command"]
    assert (sh, flag) == ("sh", "-c") and shlex.join(workers) in script and m.DRAIN_MARKER in script


def test_drain_hook_and_grace_period(objs: dict[str, dict[str, Any]]) -> None:
    c = container(objs, "amd64-1")
    sh, flag, script = c["lifecycle"]["preStop"]["exec"]["command"]
    assert (sh, flag) == ("sh", "-c") and script == pod.drain_script(900)
    assert "+ 900 ))" in script and "debug histories" in script
    grace = objs["amd64-1-statefulset"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= 900 + m.DRAIN_POLL_S + 30
    no_drain = pod.statefulset_manifest(KubernetesSpec(), NodeSpec(name="a1", platform="linux/amd64"), image="x",
                                      buildkit_port=1234, volume_gb=20, drain_timeout_s=0, config_sha256="",
                                      tls_sha256="")
    assert "lifecycle" not in no_drain["spec"]["template"]["spec"]["containers"][0]


def test_checksums_restart_the_pod_on_config_or_cert_change(run: mockrt.Run, objs: dict[str, dict[str, Any]]) -> None:
    for node in NODES:
        ann = objs[f"{node}-statefulset"]["spec"]["template"]["metadata"]["annotations"]
        assert ann[m.CONFIG_CHECKSUM] == m.sha256(objs[f"{node}-config"]["data"]["buildkitd.toml"])
        files = mockrt.secret_value(run.named(f"{node}-tls").inputs["stringData"])
        ca_and_cert = f"{files['ca.pem']}\n{files['cert.pem']}".encode()
        assert ann[m.TLS_CHECKSUM] == hashlib.sha256(ca_and_cert).hexdigest()
        assert "PRIVATE" not in json.dumps(ann)
    # each node's own cert (not just the shared CA) is in its checksum
    tls = {objs[f"{n}-statefulset"]["spec"]["template"]["metadata"]["annotations"][m.TLS_CHECKSUM] for n in NODES}
    assert len(tls) == len(NODES)
    bigger = objects(mockrt.run_main({**K8S, "buildkit-farm:volume": json.dumps({"sizeGb": 400})}, stack="k8s"))
    old = objs["arm64-1-statefulset"]["spec"]["template"]["metadata"]["annotations"]
    new = bigger["arm64-1-statefulset"]["spec"]["template"]["metadata"]["annotations"]
    assert new[m.CONFIG_CHECKSUM] != old[m.CONFIG_CHECKSUM] and new[m.TLS_CHECKSUM] == old[m.TLS_CHECKSUM]


def test_the_statefulset_await_waits_for_its_one_replica_updated_and_ready(objs: dict[str, dict[str, Any]]) -> None:
    for node in NODES:
        sts = objs[f"{node}-statefulset"]
        annotations = sts["metadata"]["annotations"]
        # the provider's own await is replaced by these conditions (see pod.ROLLED_OUT for why); they
        # hold only for a rollout of the one replica the StatefulSet has, on the object as applied
        # (pod.METADATA_DIGEST: the provider's watch can replay the object from before the patch)
        digest = annotations[pod.METADATA_DIGEST]
        assert re.fullmatch("[0-9a-f]{64}", digest), digest
        assert json.loads(annotations[pod.AWAIT_ANNOTATION]) == [
            "jsonpath={.status.updatedReplicas}=1", "jsonpath={.status.readyReplicas}=1",
            f"jsonpath={{.metadata.annotations['buildkit-farm/metadata-sha256']}}={digest}"]
        assert sts["spec"]["replicas"] == 1
        # on the StatefulSet, not its pod template: adding or changing them restarts no pod
        template = sts["spec"]["template"]["metadata"]["annotations"]
        assert pod.AWAIT_ANNOTATION not in template and pod.METADATA_DIGEST not in template
    # one digest per node's metadata (its labels name it), and a change of its labels changes it
    assert len({objs[f"{n}-statefulset"]["metadata"]["annotations"][pod.METADATA_DIGEST] for n in NODES}) == len(NODES)


def test_the_await_digest_follows_every_change_of_the_statefulsets_metadata() -> None:
    base = pod.await_annotations({"a": "1"}, pod.ROLLED_OUT)
    assert pod.await_annotations({"a": "1"}, list(pod.ROLLED_OUT)) == base  # deterministic
    assert pod.await_annotations({"a": "2"}, pod.ROLLED_OUT)[pod.METADATA_DIGEST] != base[pod.METADATA_DIGEST]
    assert pod.await_annotations({"a": "1"}, pod.ROLLED_OUT[:1])[pod.METADATA_DIGEST] != base[pod.METADATA_DIGEST]


# ----------------------------------------------------------------------------- the drain, for real

FAKE_BUILDCTL = """#!/bin/sh
# fake buildctl: `debug histories` prints the real table layout; the first
# $RUNNING_CALLS calls report two builds in flight
n=$(cat "$STATE" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$STATE"
[ -n "$FAIL" ] && { echo "connection refused" >&2; exit 1; }
printf 'TYPE\\tREF\\tCREATED\\tCOMPLETED\\tGENERATION\\tPINNED\\n'
if [ "$n" -le "$RUNNING_CALLS" ]; then
  printf 'STARTED\\tabc\\t2026-01-01T00:00:00Z\\t\\t0\\t\\n'
  printf 'STARTED\\tdef\\t2026-01-01T00:00:00Z\\t\\t0\\t\\n'
fi
printf 'COMPLETE\\tghi\\t2026-01-01T00:00:00Z\\t2026-01-01T00:01:00Z\\t1\\t\\n'
"""


def drain(tmp_path: Path, timeout_s: int, running_calls: int, fail: bool = False) -> tuple[int, int, float]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    fake = bindir / "buildctl"
    fake.write_text(FAKE_BUILDCTL)
    fake.chmod(0o755)
    marker = tmp_path / "draining"
    script = pod.drain_script(timeout_s, poll_s=0.05).replace(m.DRAIN_MARKER, str(marker))
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "STATE": str(tmp_path / "calls"),
           "RUNNING_CALLS": str(running_calls), "FAIL": "1" if fail else ""}
    start = time.monotonic()
    rc = subprocess.run(["sh", "-c", script], env=env, timeout=30).returncode
    assert marker.exists()
    return rc, int((tmp_path / "calls").read_text()), time.monotonic() - start


def test_drain_waits_for_running_builds(tmp_path: Path) -> None:
    rc, calls, _ = drain(tmp_path, timeout_s=30, running_calls=3)
    # three polls with builds, then two idle polls in a row
    assert (rc, calls) == (0, 5)


def test_drain_is_bounded(tmp_path: Path) -> None:
    # builds never finish: the hook gives up after timeout_s (whole seconds: +-1 s)
    rc, calls, took = drain(tmp_path, timeout_s=2, running_calls=10**6)
    assert rc == 0 and calls > 5 and 1 <= took < 4


def test_drain_stops_when_the_daemon_does_not_answer(tmp_path: Path) -> None:
    rc, calls, _ = drain(tmp_path, timeout_s=30, running_calls=0, fail=True)
    assert (rc, calls) == (0, 1)


# ----------------------------------------------------------------------------- config


def test_k8s_stack_config_parses() -> None:
    cfg = parse_config(raw_k8s_config())
    assert isinstance(cfg, KubernetesFarmConfig)
    assert cfg.kubernetes == KubernetesSpec(
        namespace=NS, service_type="LoadBalancer", storage_class="gp3", node_port_base=31234,
        cpu_request="2", memory_request="4Gi", cpu_limit="8", memory_limit="16Gi",
        service_annotations={"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"})
    assert cfg.buildkit.drain_timeout_seconds == 900  # the one drain key of every backend
    assert [(n.name, n.platform) for n in cfg.nodes] == [("arm64-1", "linux/arm64"), ("amd64-1", "linux/amd64")]


@pytest.mark.parametrize(("changes", "problem"), [
    ({"replicas": 2}, "kubernetes.replicas: unknown key (allowed: apiServer, cpuLimit, cpuRequest, "
                      "externalHosts, idleImage, memoryLimit, memoryRequest, metricsImage, namespace, "
                      "nodePortBase, serviceAnnotations, serviceType, storageClass)"),
    ({"nodePortBase": 29999}, "kubernetes.nodePortBase: 29999 is not an integer from 30000 to 32767"),
    ({"nodePortBase": 32767}, "kubernetes.nodePortBase: 32767 leaves no room for 2 nodes "
                              "(node i gets nodePortBase+i; allowed: 30000 to 32766)"),
    ({"cpuRequest": "9"}, "kubernetes.cpuRequest: '9' is more than kubernetes.cpuLimit ('8'); "
                          "allowed: a request at most the limit"),
    ({"memoryRequest": "17Gi"}, "kubernetes.memoryRequest: '17Gi' is more than kubernetes.memoryLimit ('16Gi')"),
    ({"memoryLimit": "lots"}, "kubernetes.memoryLimit: 'lots' is not a Kubernetes quantity like 2, 500m or 4Gi"),
    ({"serviceAnnotations": {"bad key!": "x"}}, "kubernetes.serviceAnnotations.bad key!: 'bad key!' is not "
                                               "an annotation key"),
    ({"serviceAnnotations": {"example.com/internal": True}},
     "kubernetes.serviceAnnotations.example.com/internal: True is not a string"),
    ({"serviceAnnotations": ["a"]}, "kubernetes.serviceAnnotations: ['a'] is not an object"),
    ({"serviceType": "ClusterIP", "externalHosts": ["build.example.com"]},
     "kubernetes.externalHosts: ['build.example.com'] would make nodes nodes[0], nodes[1] share the endpoint "
     "build.example.com:<port> (serviceType ClusterIP)"),
    ({"serviceType": "Ingress"}, "kubernetes.serviceType: 'Ingress' is not one of LoadBalancer, NodePort, ClusterIP"),
    ({"drainTimeoutSeconds": 120}, "kubernetes.drainTimeoutSeconds: 120: moved to buildkit.drainTimeoutSeconds, one "
     "key for every backend; run `pulumi config set --path buildkit.drainTimeoutSeconds 120`, then `pulumi config rm "
     "--path kubernetes.drainTimeoutSeconds`"),
])
def test_bad_kubernetes_config_is_reported(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(raw_k8s_config(**changes))
    assert any(p.startswith(problem) for p in e.value.problems), e.value.problems


def test_cluster_ip_with_a_host_per_node_is_fine() -> None:
    raw = raw_k8s_config(serviceType="ClusterIP", externalHosts=["build.example.com"])
    raw["nodes"] = [{**n, "host": f"{n['name']}.build.example.com"} for n in raw["nodes"]]
    cfg = parse_config(raw)
    assert isinstance(cfg, KubernetesFarmConfig)
    assert cfg.kubernetes is not None
    r = mockrt.run_main({**with_k8s(serviceType="ClusterIP", externalHosts=["build.example.com"]),
                         "buildkit-farm:nodes": json.dumps(raw["nodes"])}, stack="k8s")
    assert r.values["endpoints"] == ["tcp://arm64-1.build.example.com:1234", "tcp://amd64-1.build.example.com:1234"]


# ----------------------------------------------------------------------------- pure helpers


def test_load_balancer_address_prefers_ip_then_hostname_and_fails_clearly() -> None:
    def status(*ingress: dict[str, str]) -> Any:
        entries = [SimpleNamespace(ip=i.get("ip"), hostname=i.get("hostname")) for i in ingress]
        return SimpleNamespace(load_balancer=SimpleNamespace(ingress=entries))

    assert load_balancer_address(status({"ip": "192.0.2.1", "hostname": "lb.example"})) == "192.0.2.1"
    assert load_balancer_address(status({"hostname": "abc.elb.amazonaws.com"})) == "abc.elb.amazonaws.com"
    for empty in (None, SimpleNamespace(load_balancer=None), status()):
        with pytest.raises(ValueError, match="no ingress address"):
            load_balancer_address(empty)


def test_dial_host_and_sans() -> None:
    lb, node = KubernetesSpec(), NodeSpec(name="arm64-1", platform="linux/arm64", extra_sans=("x.example",))
    assert m.dial_host(lb, node) is None  # the load balancer's address, known after the Service
    pinned = NodeSpec(name="arm64-1", platform="linux/arm64", host="arm.build.example")
    assert m.dial_host(lb, pinned) == "arm.build.example"
    assert m.server_sans(lb, pinned, "arm.build.example", "192.0.2.9")[:3] == [
        "arm.build.example", "192.0.2.9", "arm64-1"]
    np = KubernetesSpec(service_type="NodePort", node_port_base=30500)
    assert m.dial_host(np, node) == f"arm64-1.{NS}.svc"
    assert (m.service_port(np, 2, 1234), m.service_port(lb, 2, 1234)) == (30502, 1234)
    sans = m.server_sans(np, node, f"arm64-1.{NS}.svc")
    assert sans == [f"arm64-1.{NS}.svc", "arm64-1", f"arm64-1.{NS}", f"arm64-1.{NS}.svc.cluster.local", "x.example"]
