"""otel.headers: validated without showing values, and a secret on its whole way to buildkitd.

On every backend the value travels as the node's TLS key does (ssh: the install command's stdin;
aws: a SecureString in SSM Parameter Store; kubernetes: the node's Secret, read through a
secretKeyRef): never in a command line, the user data, the env file or a plain input or output.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from components.backends.kubernetes.manifests import tls_checksum
from components.config import ConfigError, parse_config
from components.contracts.payload import parse_env, payload_files
from components.node.layout import ENV_FILE
from components.node.render import render
from tests.unit import mockrt
from tests.unit.test_ssh import local_config

SSH = {"backend": "ssh", "nodes": [{"name": "amd64-1", "platform": "linux/amd64", "host": "10.0.0.1"}],
       "ssh": {"privateKeyPath": "k"}}
ENDPOINT = "https://otlp.vendor.example:4317"
#: a value with the characters OTEL_EXPORTER_OTLP_HEADERS must encode (',' and '=' separate pairs)
TOKEN = "Bearer s3cr3t,t0k3n=="
ENCODED = "Bearer%20s3cr3t%2Ct0k3n%3D%3D"
HEADERS = {"authorization": TOKEN, "x-team": "builds"}
RENDERED = f"authorization={ENCODED},x-team=builds"


def leaks(text: str) -> bool:
    return "s3cr3t" in text


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(("headers", "expected"), [
    ({"x api": "v"}, "otel.headers.x api: 'x api' is not an HTTP header name like x-api-key"),
    ({"k": "s3cr3t\nmore"}, "otel.headers.k: holds a character other than printable ASCII"),
    ({"k": "s3cr3t\u00e9"}, "otel.headers.k: holds a character other than printable ASCII"),
    ({"k": " s3cr3t"}, "otel.headers.k: is empty or starts or ends with a space"),
    ({"k": ""}, "otel.headers.k: is empty"),
    ({"k": 5}, "otel.headers.k: is not a string"),
    ({"k": "s3cr3t" * 400}, "otel.headers.k: is 2400 characters long, more than 2048"),
    ({"X-Key": "s3cr3t", "x-key": "s3cr3t"}, "otel.headers.X-Key: is given twice (header names are case-insensitive)"),
])
def test_bad_headers_are_refused_without_showing_the_value(headers: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({**SSH, "otel": {"endpoint": ENDPOINT, "headers": headers}})
    assert expected in str(e.value)
    assert not leaks(str(e.value)), str(e.value)


def test_all_bad_headers_are_reported_at_once() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({**SSH, "otel": {"endpoint": ENDPOINT, "headers": {"a b": "v", "k": "", "j": "x\ty"}}})
    assert len(e.value.problems) == 3, e.value.problems


def test_headers_without_an_endpoint_are_refused() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({**SSH, "otel": {"headers": {"k": "s3cr3t"}}})
    assert "otel.headers: are set but otel.endpoint is empty" in str(e.value)


def test_the_config_never_prints_the_headers() -> None:
    cfg = parse_config({**SSH, "otel": {"endpoint": ENDPOINT, "headers": HEADERS}})
    assert not leaks(repr(cfg)) and not leaks(str(cfg.otel))


# ----------------------------------------------------------------------------- rendering


def test_the_node_is_told_headers_come_with_the_tls_material_and_only_that() -> None:
    cfg = parse_config({**SSH, "otel": {"endpoint": ENDPOINT, "headers": HEADERS}})
    bundle = render(cfg, cfg.nodes[0], cert_source="stdin")
    assert bundle.otel_headers == RENDERED
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in bundle.daemon_env
    payload = bundle.payload()
    assert not leaks(payload) and not leaks(repr(bundle))
    assert parse_env(payload_files(payload)[ENV_FILE])["BKF_OTEL_HEADERS"] == "1"
    off = parse_config({**SSH, "otel": {"endpoint": ENDPOINT}})
    assert parse_env(payload_files(render(off, off.nodes[0], cert_source="stdin").payload())[ENV_FILE])[
        "BKF_OTEL_HEADERS"] == "0"


def test_the_aws_user_data_with_headers_idle_stop_metrics_and_otel_fits() -> None:
    raw = {"backend": "aws", "nodes": [{"name": "arm64-1", "platform": "linux/arm64"}],
           "allowedCidrs": ["10.0.0.0/16"], "idleStop": {"afterMinutes": 30}, "metrics": {"port": 9464},
           "otel": {"endpoint": "http://otel-collector.example.internal:4317", "headers": {"x-api-key": "k" * 2048}}}
    cfg = parse_config(raw, aws_region="us-east-1")
    payload = render(cfg, cfg.nodes[0], cert_source="ssm", ssm_prefix="/buildkit-farm/production/arm64-1",
                     aws_region="us-east-1", data_fstab=True, init="systemd",
                     per_boot_hook=True).payload(data_device="/dev/sdf")
    size = len(gzip.compress(payload.encode(), compresslevel=9, mtime=0))
    print(f"\nuser data with idleStop, metrics, otel and otel.headers: {size} bytes gzipped of 16384")
    # the headers add one flag to the env file, whatever their length: they are not in the user data
    assert "k" * 64 not in payload and size <= 16384


# ----------------------------------------------------------------------------- every backend


def stack(name: str) -> dict[str, str]:
    cfg = mockrt.stack_config(mockrt.ROOT / f"Pulumi.{name}.yaml")
    return {**cfg, "buildkit-farm:otel": json.dumps({"endpoint": ENDPOINT, "headers": HEADERS})}


def assert_nowhere_in_plain(run: mockrt.Run) -> None:
    plain = [(r.name, path) for r in run.mocks.resources for path, s in mockrt.plaintext_strings(r.inputs)
             if leaks(s) or ENCODED in s]
    assert plain == []
    for name, value in run.values.items():
        if not run.secret[name]:
            assert not leaks(json.dumps(value)) and ENCODED not in json.dumps(value), name


def test_ssh_the_headers_ride_the_secret_stdin_bundle_not_the_command(tmp_path: Path) -> None:
    cfg = {**local_config(tmp_path), "buildkit-farm:otel": json.dumps({"endpoint": ENDPOINT, "headers": HEADERS})}
    run = mockrt.run_main(cfg, stack="local")
    assert_nowhere_in_plain(run)
    installs = [r for r in run.mocks.resources if r.typ == "command:remote:Command" and r.name.endswith("-buildkitd")]
    assert len(installs) == 3
    for r in installs:
        assert not leaks(r.inputs["create"])
        stdin = mockrt.secret_value(r.inputs["stdin"])
        assert stdin.endswith(f"### otel-headers\n{RENDERED}\n"), stdin[-200:]


def test_aws_the_headers_are_a_securestring_the_node_alone_may_read() -> None:
    run = mockrt.run_main(stack("dev"), stack="dev")
    assert_nowhere_in_plain(run)
    params = {r.inputs["name"]: r.inputs for r in run.of_type("aws:ssm/parameter:Parameter")}
    nodes = [r for r in run.of_type("aws:ec2/instance:Instance")]
    assert nodes
    for inst in nodes:
        node = inst.name.removeprefix("bkf-").removesuffix("-instance")
        user_data = gzip.decompress(base64.b64decode(inst.inputs["userDataBase64"])).decode()
        assert not leaks(user_data) and ENCODED not in user_data and "BKF_OTEL_HEADERS=1" in user_data
        (p,) = [v for k, v in params.items() if k.endswith(f"/{node}/otel-headers")]
        assert p["type"] == "SecureString" and mockrt.secret_value(p["value"]) == RENDERED
        policy = json.loads(run.named(f"{node}-read-certs").inputs["policy"])
        read = next(s for s in policy["Statement"] if s["Sid"] == "ReadOwnCerts")
        assert any(arn.endswith(f"/{node}/otel-headers") for arn in read["Resource"])
        decrypt = next(s for s in policy["Statement"] if s["Sid"] == "DecryptOwnKeyViaSsm")
        assert len(decrypt["Condition"]["StringLike"]["kms:EncryptionContext:PARAMETER_ARN"]) == 2
        # a new value re-runs `bkf-node.sh certs` on the node (the parameter's version is in the command)
        rotation = run.named(f"{node}-cert-rotation").inputs["parameters"]["commands"]
        assert "otel-headers v" in json.dumps(rotation)


def test_kubernetes_the_pod_reads_the_headers_from_its_secret() -> None:
    run = mockrt.run_main(stack("k8s"), stack="k8s")
    assert_nowhere_in_plain(run)
    secrets = {r.name: r.inputs for r in run.of_type("kubernetes:core/v1:Secret")}
    for s in run.of_type("kubernetes:apps/v1:StatefulSet"):
        # the pod spec stays reviewable: only the Secret is secret, not the StatefulSet around the ref
        assert ENDPOINT in [v for _, v in mockrt.plaintext_strings(s.inputs)]
        (c,) = mockrt.plain(s.inputs)["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in c["env"]}
        ref = env["OTEL_EXPORTER_OTLP_HEADERS"]["valueFrom"]["secretKeyRef"]
        assert "value" not in env["OTEL_EXPORTER_OTLP_HEADERS"]
        (secret,) = [v for k, v in secrets.items() if v["metadata"]["name"] == ref["name"]]
        assert mockrt.secret_value(secret["stringData"])[ref["key"]] == RENDERED


def test_a_changed_header_rolls_the_pod_without_the_annotation_revealing_it() -> None:
    ca, cert, key = "CA", "CERT", "KEY"
    assert tls_checksum(ca, cert) == tls_checksum(ca, cert, key, "")  # no headers: as before
    with_a, with_b = tls_checksum(ca, cert, key, "k=a"), tls_checksum(ca, cert, key, "k=b")
    assert len({tls_checksum(ca, cert), with_a, with_b}) == 3
    # keyed by the node's private key: without it a guess of the value cannot be checked
    assert tls_checksum(ca, cert, "OTHER KEY", "k=a") != with_a
