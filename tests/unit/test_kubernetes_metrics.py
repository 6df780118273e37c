"""metrics.port on Kubernetes: the config key, the sidecar, its port on the Service and in the
NetworkPolicy, as the whole program registers them under mocks (Pulumi.k8s.yaml with metrics on),
each object validated against the strict Kubernetes schema and read by the policy pack.

The cluster tier (tests/k8s/test_pulumi_up.py) scrapes the same pod for real.
"""

from __future__ import annotations

import hashlib
import tomllib
from typing import Any

import kubernetes_validate
import pytest

from components.backends.kubernetes.config import KubernetesFarmConfig
from components.config import ConfigError, parse_config
from components.node.layout import ROOTLESS_LAYOUT
from components.node.payload import shipped_metrics_proxy
from review.policy import checks as c
from review.policy.checks import Settings
from tests.unit import mockrt
from tests.unit.test_kubernetes import CIDRS, K8S, K8S_VERSION, NODES, objects
from tests.unit.test_policy import program_resources, run_all, service

PORT = 9464
IMAGE = "python:3.11-slim@sha256:" + "ab" * 32
K8S_RAW = {"backend": "kubernetes", "nodes": [{"name": "amd64-1", "platform": "linux/amd64"}],
           "allowedCidrs": ["10.0.0.0/8"]}


def with_metrics(config: dict[str, str], **kubernetes: Any) -> dict[str, str]:
    cfg = mockrt.with_section(config, "metrics", port=PORT)
    return mockrt.with_section(cfg, "kubernetes", metricsImage=IMAGE, **kubernetes)


@pytest.fixture(scope="module")
def on() -> dict[str, dict[str, Any]]:
    return objects(mockrt.run_main(with_metrics(K8S), stack="k8s"))


@pytest.fixture(scope="module")
def off() -> dict[str, dict[str, Any]]:
    return objects(mockrt.run_main(K8S, stack="k8s"))


def pod_spec(objs: dict[str, dict[str, Any]], node: str) -> dict[str, Any]:
    spec: dict[str, Any] = objs[f"{node}-statefulset"]["spec"]["template"]["spec"]
    return spec


def containers(objs: dict[str, dict[str, Any]], node: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in pod_spec(objs, node)["containers"]}


# ------------------------------------------------------------------ config

def test_the_sidecar_image_is_required_with_metrics_and_pinned() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({**K8S_RAW, "metrics": {"port": PORT}})
    assert e.value.problems == [
        "kubernetes.metricsImage: '': metrics.port (9464) runs its endpoint in a sidecar container, which needs an "
        "image with python3 (allowed: an image pinned by tag and digest, like python:3.11-slim@sha256:<digest>)"]
    with pytest.raises(ConfigError) as e:
        parse_config({**K8S_RAW, "metrics": {"port": PORT}, "kubernetes": {"metricsImage": "python:3.11-slim"}})
    assert e.value.problems == ["kubernetes.metricsImage: 'python:3.11-slim' is not an image with python3, pinned "
                                "by tag and digest (name:tag@sha256:<64 hex>; empty: none)"]
    cfg = parse_config({**K8S_RAW, "metrics": {"port": PORT}, "kubernetes": {"metricsImage": IMAGE}})
    assert isinstance(cfg, KubernetesFarmConfig)
    assert (cfg.metrics.port, cfg.kubernetes.metrics_image) == (PORT, IMAGE)
    # the build port stays refused on this backend too (a bad metrics section is its own problem)
    with pytest.raises(ConfigError) as e:
        parse_config({**K8S_RAW, "metrics": {"port": 1234}, "kubernetes": {"metricsImage": IMAGE}})
    assert [p.split(":")[0] for p in e.value.problems] == ["metrics.port"]


# ------------------------------------------------------------------ what the program registers

@pytest.mark.parametrize("service_type", ["LoadBalancer", "NodePort", "ClusterIP"])
def test_every_object_validates_against_the_strict_schema(service_type: str) -> None:
    cfg = with_metrics(K8S, serviceType=service_type,
                       externalHosts=["build.example.com"] if service_type == "NodePort" else [])
    for name, obj in objects(mockrt.run_main(cfg, stack="k8s")).items():
        assert kubernetes_validate.validate(obj, K8S_VERSION, strict=True) == "1.37", name


def test_off_the_pod_service_and_policy_are_what_they_were(off: dict[str, dict[str, Any]]) -> None:
    for node in NODES:
        spec = pod_spec(off, node)
        assert list(containers(off, node)) == ["buildkitd"] and "initContainers" not in spec
        assert [v["name"] for v in spec["volumes"]] == ["config"]
        assert [p["name"] for p in off[f"{node}-address-service"]["spec"]["ports"]] == ["buildkitd"]
        assert set(off[f"{node}-config"]["data"]) == {"buildkitd.toml"}
        assert "debugAddress" not in tomllib.loads(off[f"{node}-config"]["data"]["buildkitd.toml"])["grpc"]
    (rule,) = off["farm-network-policy"]["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 1234}]


def test_the_sidecar_runs_the_shipped_proxy_on_the_daemons_sockets(on: dict[str, dict[str, Any]]) -> None:
    L = ROOTLESS_LAYOUT
    for node in NODES:
        spec = pod_spec(on, node)
        c = containers(on, node)
        assert list(c) == ["buildkitd", "metrics"]
        side, daemon = c["metrics"], c["buildkitd"]
        assert side["image"] == IMAGE
        argv = side["command"]
        opts = dict(zip(argv[2::2], argv[3::2], strict=True))
        assert argv[:2] == ["python3", "/opt/buildkit-farm/metrics/bkf-metrics.py"]
        assert opts == {"--port": "9464", "--tls-dir": L.tls_dir,
                        "--debug-socket": "/run/user/1000/buildkit/debug.sock",
                        "--socket": "/run/user/1000/buildkit/buildkitd.sock",
                        "--buildctl": "/opt/buildkit-farm/bin/buildctl",
                        "--config": L.config_path, "--state-dir": L.state_dir}
        # the daemon serves its debug handlers on that socket, and its gRPC socket is the one the sidecar reads
        data = on[f"{node}-config"]["data"]
        grpc = tomllib.loads(data["buildkitd.toml"])["grpc"]
        assert grpc["debugAddress"] == "unix://" + opts["--debug-socket"]
        assert f"unix://{opts['--socket']}" in daemon["args"]
        # the script is the module every other node runs, shipped in the node's ConfigMap
        assert data["bkf-metrics.py"] == shipped_metrics_proxy()
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["metrics-proxy"]["configMap"] == {"name": f"{node}-config", "defaultMode": 0o444, "items": [
            {"key": "bkf-metrics.py", "path": "bkf-metrics.py"}]}
        # the run dir is one emptyDir in both containers: the sockets never leave the pod
        assert volumes["run"] == {"name": "run", "emptyDir": {}}
        assert {"name": "run", "mountPath": L.run_dir} in daemon["volumeMounts"]
        mounts = {m["mountPath"]: m for m in side["volumeMounts"]}
        assert mounts[L.run_dir]["name"] == "run"
        # every path the sidecar is given lies in one of its mounts, from the volume that holds it
        where = {L.tls_dir: "config", L.config_path: "config", L.state_dir: "state",
                 "/opt/buildkit-farm/bin/buildctl": "bkf-tools", argv[1]: "metrics-proxy"}
        for path, volume in where.items():
            (m,) = [m for p, m in mounts.items() if path == p or path.startswith(p + "/")]
            assert m["name"] == volume, path
        # read only, except the run dir (it connects to the sockets)
        assert all(m.get("readOnly") for p, m in mounts.items() if p != L.run_dir)
        # the daemon's user (the sockets are 0660 of uid 1000), nothing more
        sc = side["securityContext"]
        assert (sc["runAsUser"], sc["runAsNonRoot"], sc["allowPrivilegeEscalation"], sc["readOnlyRootFilesystem"],
                sc["capabilities"], sc["seccompProfile"]) == (
            1000, True, False, True, {"drop": ["ALL"]}, {"type": "RuntimeDefault"})
        assert side["ports"] == [{"name": "metrics", "containerPort": PORT, "protocol": "TCP"}]
        # buildctl for the history comes from the BuildKit image itself
        (init,) = spec["initContainers"]
        assert init["image"] == daemon["image"]
        assert init["command"] == ["cp", "/usr/bin/buildctl", "/opt/buildkit-farm/bin/buildctl"]
        assert init["volumeMounts"] == [{"name": "bkf-tools", "mountPath": "/opt/buildkit-farm/bin"}]


def test_the_port_is_on_the_service_and_admitted_from_allowed_cidrs_only(on: dict[str, dict[str, Any]]) -> None:
    for node in NODES:
        svc = on[f"{node}-address-service"]["spec"]
        assert svc["ports"][1] == {"name": "metrics", "protocol": "TCP", "port": PORT, "targetPort": PORT}
        assert svc["loadBalancerSourceRanges"] == CIDRS
    (rule,) = on["farm-network-policy"]["spec"]["ingress"]
    assert rule["from"] == [{"ipBlock": {"cidr": c}} for c in CIDRS]
    assert rule["ports"] == [{"protocol": "TCP", "port": 1234}, {"protocol": "TCP", "port": PORT}]


def test_a_new_proxy_script_restarts_the_pod(on: dict[str, dict[str, Any]], off: dict[str, dict[str, Any]]) -> None:
    key = "buildkit-farm/config-sha256"
    for node in NODES:
        annotations = [o[f"{node}-statefulset"]["spec"]["template"]["metadata"]["annotations"][key] for o in (on, off)]
        assert annotations[0] != annotations[1]
    toml = on["amd64-1-config"]["data"]["buildkitd.toml"]
    assert on["amd64-1-statefulset"]["spec"]["template"]["metadata"]["annotations"][key] == \
        hashlib.sha256((toml + shipped_metrics_proxy()).encode()).hexdigest()


def test_the_example_stack_with_metrics_passes_every_mandatory_policy() -> None:
    cfg = with_metrics(K8S)
    found = run_all(program_resources(cfg, "k8s"), Settings.from_stack_config(cfg))
    assert set(found) == {"more-than-one-node-per-platform"}, found



def test_the_policy_pack_admits_the_metrics_service_port_only_with_metrics_on() -> None:
    on, off = Settings(metrics_port=PORT), Settings()
    ports = [{"name": "buildkitd", "port": 1234, "targetPort": 1234},
             {"name": "metrics", "port": PORT, "targetPort": PORT}]
    svc = service({"type": "ClusterIP", "ports": ports})
    assert c.ingress_build_port_only(svc, on) == []
    assert c.ingress_build_port_only(svc, off) == [
        "Service n1-service: exposes port 9464; only 1234 (the build port) may be exposed"]
    assert c.ingress_build_port_only(service({"type": "ClusterIP", "ports": [{"port": 22}]}), on) == [
        "Service n1-service: exposes port 22; only 1234 (the build port) and 9464 (metrics.port) may be exposed"]
