"""The whole program under mocks: PKI, builder, outputs, secrets (AWS dev stack)."""

from __future__ import annotations

import json
import re

import pytest

from components.pki import CA_USES, CLIENT_USES, SERVER_USES
from tests.unit import mockrt

DEV = mockrt.stack_config(mockrt.ROOT / "Pulumi.dev.yaml")
EXPORTS = {"builderName", "backend", "platforms", "nodes", "endpoints", "caCert", "clientCert", "clientKey",
           "clientCerts", "clientKeys", "certExpiry", "setupBuildxAction", "buildxCreateScript"}


@pytest.fixture(scope="module")
def dev() -> mockrt.Run:
    return mockrt.run_main(DEV)


def test_every_output_ci_needs_is_exported(dev: mockrt.Run) -> None:
    assert set(dev.values) == EXPORTS
    assert dev.values["builderName"] == "bkf-dev"
    assert dev.values["platforms"] == ["linux/arm64", "linux/amd64"]
    assert [n["name"] for n in dev.values["nodes"]] == ["arm64-1", "amd64-1"]
    assert dev.values["endpoints"] == [n["endpoint"] for n in dev.values["nodes"]]
    assert dev.values["caCert"] == mockrt.fake_pem("CERTIFICATE", "pki-ca")
    assert dev.values["clientCert"] == mockrt.fake_pem("CERTIFICATE", "pki-client-ci-cert")
    assert set(dev.values["clientCerts"]) == {"ci", "dev"}
    # the earliest expiry among leaves (servers expire first in the mocks)
    assert dev.values["certExpiry"] == "2027-02-01T00:00:00Z"


def test_private_keys_only_as_secrets(dev: mockrt.Run) -> None:
    assert dev.secret["clientKey"] and dev.secret["clientKeys"]
    assert "PRIVATE KEY" in dev.values["clientKey"]
    for name, value in dev.values.items():
        if not dev.secret[name]:
            assert "PRIVATE KEY" not in json.dumps(value), name
    leaks = [(r.name, path) for r in dev.mocks.resources
             for path, s in mockrt.plaintext_strings(r.inputs) if "PRIVATE KEY-----" in s]
    assert leaks == []


def test_keys_are_ecdsa_p256_with_every_pem_secret(dev: mockrt.Run) -> None:
    keys = dev.of_type("tls:index/privateKey:PrivateKey")
    assert len(keys) == 1 + 2 + 2  # CA, two servers, two clients
    for k in keys:
        assert (k.inputs["algorithm"], k.inputs["ecdsaCurve"]) == ("ECDSA", "P256")
        assert set(dev.registered[mockrt.short(k.name)].opts.additional_secret_outputs or []) >= {
            "private_key_pem", "private_key_pem_pkcs8", "private_key_openssh"}


def test_rsa_is_configurable() -> None:
    cfg = dict(DEV)
    cfg["buildkit-farm:pki"] = json.dumps({"algorithm": "RSA", "rsaBits": 4096})
    keys = mockrt.run_main(cfg).of_type("tls:index/privateKey:PrivateKey")
    assert {(k.inputs["algorithm"], k.inputs["rsaBits"]) for k in keys} == {("RSA", 4096)}


def test_ca_server_and_client_certs(dev: mockrt.Run) -> None:
    ca = dev.named("pki-ca").inputs
    assert ca["isCaCertificate"] is True and ca["allowedUses"] == CA_USES
    assert ca["validityPeriodHours"] == 24 * 365 * 5
    for node in ("arm64-1", "amd64-1"):
        cert = dev.named(f"pki-server-{node}-cert").inputs
        assert cert["allowedUses"] == SERVER_USES and "client_auth" not in cert["allowedUses"]
        assert (cert["validityPeriodHours"], cert["earlyRenewalHours"]) == (2160, 336)
        assert cert["certRequestPem"] == mockrt.fake_pem("CERTIFICATE REQUEST", f"pki-server-{node}-csr")
        assert mockrt.secret_value(cert["caPrivateKeyPem"]) == mockrt.fake_pem("EC PRIVATE KEY", "pki-ca-key")
    for client in ("ci", "dev"):
        cert = dev.named(f"pki-client-{client}-cert").inputs
        assert cert["allowedUses"] == CLIENT_USES and "client_auth" in cert["allowedUses"]
        assert dev.named(f"pki-client-{client}-csr").inputs["subject"]["commonName"] == client


def test_builder_command(dev: mockrt.Run) -> None:
    cmd = dev.named("builder-buildx").inputs
    script = cmd["create"]
    assert script == dev.values["buildxCreateScript"]
    creates = re.findall(r"^bx create .*$", script, re.M)
    assert len(creates) == 2
    assert "--append" not in creates[0] and "--append" in creates[1]
    for line, node in zip(creates, dev.values["nodes"], strict=True):
        assert f"--name bkf-dev --driver remote --node {node['name']} --platform {node['platform']}" in line
        assert f"servername={node['serverName']}," in line
        assert line.endswith(node["endpoint"] + " >/dev/null")
    assert "bx inspect --bootstrap bkf-dev" in script
    assert cmd["delete"].count("docker buildx rm bkf-dev") == 1
    # secrets reach the script only through its environment
    assert "PRIVATE KEY" not in script
    # (the SDK marks the whole environment map secret because the key is)
    env = mockrt.secret_value(cmd["environment"])
    assert env["BKF_TLS_KEY"] == dev.values["clientKey"]
    assert (env["BKF_TLS_CERT"], env["BKF_TLS_CA"]) == (dev.values["clientCert"], dev.values["caCert"])
    assert "BUILDX_CONFIG" not in env  # none configured: the caller's or docker's default applies
    # a new endpoint or cert replaces the builder, deleting the old one first
    assert cmd["triggers"] == [dev.values["endpoints"], dev.values["caCert"], dev.values["clientCert"]]
    assert dev.registered["builder-buildx"].opts.delete_before_replace is True
    # it waits for every node
    deps = dev.registered["builder"].opts.depends_on
    assert {mockrt.short(d._name) for d in deps} == {"arm64-1", "amd64-1"}  # type: ignore[union-attr,arg-type]


def test_builder_can_be_switched_off() -> None:
    cfg = dict(DEV)
    cfg["buildkit-farm:builder"] = json.dumps({"enabled": False})
    run = mockrt.run_main(cfg)
    assert not run.of_type("command:local:Command")
    assert run.values["builderName"] == "bkf-dev"
    assert "bx create --name bkf-dev" in run.values["buildxCreateScript"]


def test_setup_buildx_action_inputs(dev: mockrt.Run) -> None:
    action = dev.values["setupBuildxAction"]
    first, second = dev.values["nodes"]
    assert action["driver"] == "remote"
    assert (action["endpoint"], action["platforms"]) == (first["endpoint"], "linux/arm64")
    assert action["driver-opts"] == f"servername={first['serverName']}"
    import yaml
    assert yaml.safe_load(action["append"]) == [{
        "name": "amd64-1", "endpoint": second["endpoint"], "platforms": "linux/amd64",
        "driver-opts": [f"servername={second['serverName']}"]}]
    assert action["env"] == {f"BUILDER_NODE_{i}_AUTH_TLS_{k}": v for i in (0, 1) for k, v in
                             (("CACERT", "caCert"), ("CERT", "clientCert"), ("KEY", "clientKey"))}


def test_config_errors_stop_before_any_resource() -> None:
    cfg = dict(DEV)
    cfg["buildkit-farm:nodes"] = json.dumps([{"name": "arm64-1", "platform": "linux/amd"}])
    cfg["buildkit-farm:allowedCidrs"] = json.dumps(["0.0.0.0/0"])
    import pulumi
    with pytest.raises(pulumi.RunError) as e:
        mockrt.run_main(cfg)
    msg = str(e.value)
    assert "nodes[0].platform: 'linux/amd' is not one of linux/amd64, linux/arm64" in msg
    assert "allowedCidrs[0]: '0.0.0.0/0' opens the build port" in msg
