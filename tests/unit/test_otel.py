"""otel: the config key, and the same OTLP variables for buildkitd on every backend."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.config import ConfigError, parse_config
from components.contracts.payload import parse_env, payload_files
from components.node.layout import ENV_FILE
from components.node.render import render
from tests.unit import mockrt

SSH = {"backend": "ssh", "nodes": [{"name": "amd64-1", "platform": "linux/amd64", "host": "10.0.0.1"}],
       "ssh": {"privateKeyPath": "k"}}
OTEL = {"endpoint": "http://otel-collector.internal:4317"}


def test_off_by_default_and_no_variable_is_set() -> None:
    cfg = parse_config(SSH)
    bundle = render(cfg, cfg.nodes[0], cert_source="stdin")
    assert bundle.daemon_env == {}
    env = parse_env(payload_files(bundle.payload())[ENV_FILE])
    assert env["BKF_OTEL_ENDPOINT"] == "" and env["BKF_OTEL_PROTOCOL"] == "grpc"


def test_the_node_gets_the_endpoint_and_its_name_as_resource_attributes() -> None:
    cfg = parse_config({**SSH, "otel": {**OTEL, "protocol": "http/protobuf"}})
    bundle = render(cfg, cfg.nodes[0], cert_source="stdin")
    assert bundle.daemon_env == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.internal:4317",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_RESOURCE_ATTRIBUTES": "bkf.node=amd64-1,bkf.platform=linux/amd64"}
    env = parse_env(payload_files(bundle.payload())[ENV_FILE])
    assert env["BKF_OTEL_ENDPOINT"] == "http://otel-collector.internal:4317"
    assert env["BKF_OTEL_PROTOCOL"] == "http/protobuf"


@pytest.mark.parametrize(("otel", "expected"), [
    ({"endpoint": "otel:4317"}, "otel.endpoint: 'otel:4317' is not an OTLP endpoint URL like http://otel-collector:4317"),
    ({"endpoint": "http://a b"}, "otel.endpoint: 'http://a b' is not an OTLP endpoint URL"),
    ({"protocol": "http/json"}, "otel.protocol: 'http/json' is not one of"),
])
def test_bad_values_are_refused(otel: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({**SSH, "otel": otel})
    assert expected in str(e.value)


def test_the_kubernetes_pod_gets_the_same_variables() -> None:
    k8s = mockrt.stack_config(mockrt.ROOT / "Pulumi.k8s.yaml")
    run = mockrt.run_main({**k8s, "buildkit-farm:otel": json.dumps(OTEL)}, stack="k8s")
    sts = [mockrt.plain(r.inputs) for r in run.mocks.resources if r.typ == "kubernetes:apps/v1:StatefulSet"]
    assert sts
    for s in sts:
        (c,) = s["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in c["env"]}
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == OTEL["endpoint"]
        assert env["OTEL_RESOURCE_ATTRIBUTES"].startswith("bkf.node=")
