"""aws.endpoint public | private under mocks: what clients dial, and every address in the server cert."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components.config import ConfigError, parse_config
from tests.unit import mockrt

DEV = mockrt.stack_config(mockrt.ROOT / "Pulumi.dev.yaml")
NODES = ("arm64-1", "amd64-1")
PRIVATE = {"arm64-1": "10.20.1.11", "amd64-1": "10.20.1.12"}
SUBNET = "subnet-0abc1234"


def config(private_ips: bool = True, **aws: Any) -> dict[str, str]:
    cfg = mockrt.with_section(DEV, "aws", **aws)
    nodes = json.loads(cfg["buildkit-farm:nodes"])
    if private_ips:
        for n in nodes:
            n["privateIp"] = PRIVATE[n["name"]]
    cfg["buildkit-farm:nodes"] = json.dumps(nodes)
    return cfg


def test_the_dev_stack_keeps_its_elastic_ips_and_instance_inputs() -> None:
    run = mockrt.run_main(DEV)
    for node in NODES:
        ip = mockrt._fake_ip(f"{node}-address-eip")
        assert run.named(f"pki-server-{node}-csr").inputs["ipAddresses"] == [ip]
        assert "privateIp" not in run.named(f"{node}-instance").inputs
        assert not run.registered[f"{node}-instance"].opts.delete_before_replace


def test_public_with_private_ips_dials_the_elastic_ip_and_names_both() -> None:
    run = mockrt.run_main(config(subnetId=SUBNET))
    for n in run.values["nodes"]:
        eip = mockrt._fake_ip(f"{n['name']}-address-eip")
        assert n["endpoint"] == f"tcp://{eip}:1234" and n["serverName"] == eip
        assert run.named(f"pki-server-{n['name']}-csr").inputs["ipAddresses"] == [eip, PRIVATE[n["name"]]]
        assert run.named(f"{n['name']}-instance").inputs["privateIp"] == PRIVATE[n["name"]]
        assert run.named(f"{n['name']}-eip-association").inputs["allocationId"] == \
            f"eipalloc-{n['name']}-address-eip"


def test_private_dials_the_private_ip_without_an_elastic_ip() -> None:
    run = mockrt.run_main(config(endpoint="private", subnetId=SUBNET))
    assert not run.of_type("aws:ec2/eip:Eip") and not run.of_type("aws:ec2/eipAssociation:EipAssociation")
    for n in run.values["nodes"]:
        ip = PRIVATE[n["name"]]
        assert n["endpoint"] == f"tcp://{ip}:1234" and n["serverName"] == ip
        assert run.named(f"pki-server-{n['name']}-csr").inputs["ipAddresses"] == [ip]
        inst = run.named(f"{n['name']}-instance").inputs
        assert inst["privateIp"] == ip and inst["subnetId"] == SUBNET
        # the old instance holds the address until it is deleted
        assert run.registered[f"{n['name']}-instance"].opts.delete_before_replace is True
    assert f"tcp://{PRIVATE['amd64-1']}:1234" in run.values["buildxCreateScript"]


def test_private_with_dns_points_the_record_at_the_private_ip() -> None:
    run = mockrt.run_main(config(endpoint="private", subnetId=SUBNET, dnsZoneId="Z0123456789ABC",
                                 dnsDomain="build.internal"))
    assert run.named("arm64-1-address-dns").inputs["records"] == [PRIVATE["arm64-1"]]
    csr = run.named("pki-server-arm64-1-csr").inputs
    assert csr["dnsNames"] == ["arm64-1.build.internal"] and csr["ipAddresses"] == [PRIVATE["arm64-1"]]
    assert run.values["nodes"][0]["serverName"] == "arm64-1.build.internal"


def problems(cfg: dict[str, str]) -> list[str]:
    raw = {k.removeprefix("buildkit-farm:"): json.loads(v) if v[:1] in "[{" else v
           for k, v in cfg.items() if k.startswith("buildkit-farm:")}
    with pytest.raises(ConfigError) as e:
        parse_config(raw, aws_region="eu-west-1")
    return e.value.problems


@pytest.mark.parametrize(("cfg", "expected"), [
    (config(endpoint="inside", subnetId=SUBNET), "aws.endpoint: 'inside' is not one of public, private"),
    (config(private_ips=False, endpoint="private", subnetId=SUBNET),
     "aws.endpoint: 'private' needs a privateIp on every node: nodes[0], nodes[1] lack one"),
    (config(endpoint="private"), "aws.subnetId: missing; aws.endpoint private needs the subnet"),
    (config(), "aws.subnetId: missing; nodes[].privateIp must name an address of a subnet"),
])
def test_bad_endpoint_settings_are_config_errors(cfg: dict[str, str], expected: str) -> None:
    found = problems(cfg)
    assert any(expected in p for p in found), found


@pytest.mark.parametrize(("ip", "expected"), [
    ("8.8.8.8", "nodes[0].privateIp: '8.8.8.8' is not a private IPv4 address"),
    ("10.20.1.12", "aws.endpoint: nodes[1].privateIp '10.20.1.12' is also nodes[0]'s"),
    ("fd00::1", "nodes[0].privateIp: 'fd00::1' is not a private IPv4 address"),
])
def test_bad_private_ips_are_config_errors(ip: str, expected: str) -> None:
    cfg = config(endpoint="private", subnetId=SUBNET)
    nodes = json.loads(cfg["buildkit-farm:nodes"])
    nodes[0]["privateIp"] = ip
    cfg["buildkit-farm:nodes"] = json.dumps(nodes)
    found = problems(cfg)
    assert any(expected in p for p in found), found
