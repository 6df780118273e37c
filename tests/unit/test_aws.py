"""AWS backend under mocks: the whole program with Pulumi.dev.yaml, and option variants."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest

from components import versions
from components.backends.aws.components import nvme_device_path
from components.node.payload import node_script
from review.iam import Request, evaluate
from tests.unit import mockrt
from tests.unit.test_least_privilege import decrypt, param, role_policies

DEV = mockrt.stack_config(mockrt.ROOT / "Pulumi.dev.yaml")
NODES = ("arm64-1", "amd64-1")


@pytest.fixture(scope="module")
def dev() -> mockrt.Run:
    return mockrt.run_main(DEV)


def with_aws(**aws: Any) -> dict[str, str]:
    return mockrt.with_section(DEV, "aws", **aws)


def user_data(run: mockrt.Run, node: str) -> str:
    return gzip.decompress(base64.b64decode(run.named(f"{node}-instance").inputs["userDataBase64"])).decode()


def test_exactly_the_expected_resources_for_two_nodes(dev: mockrt.Run) -> None:
    per_node = {"", "-address", "-address-eip", "-sg", "-role", "-ssm-core", "-read-certs", "-profile",
                "-ca", "-cert", "-key", "-cache", "-instance", "-cache-attachment", "-eip-association",
                "-cert-rotation"}
    pki = {"pki", "pki-ca", "pki-ca-key"} | {
        f"pki-{kind}-{n}-{part}" for kind, names in (("server", NODES), ("client", ("ci", "dev")))
        for n in names for part in ("key", "csr", "cert")}
    expected = {f"{n}{s}" for n in NODES for s in per_node} | pki | {"builder", "builder-buildx", "bkf"}
    assert dev.names() == expected


def test_instances_match_platform_and_are_hardened(dev: mockrt.Run) -> None:
    want = {"arm64-1": ("c7g.2xlarge", "arm64"), "amd64-1": ("c7i.2xlarge", "x86_64")}
    for node, (itype, arch) in want.items():
        inst = dev.named(f"{node}-instance").inputs
        assert inst["instanceType"] == itype
        assert inst["ami"] == f"ami-0{'a' if arch == 'arm64' else 'b'}{'0' * 15}"
        assert inst["metadataOptions"] == {"httpEndpoint": "enabled", "httpTokens": "required",
                                           "httpPutResponseHopLimit": 1}
        assert inst["rootBlockDevice"]["encrypted"] is True
        assert inst["iamInstanceProfile"] == f"{node}-profile"
        assert inst["availabilityZone"] == "eu-west-1a"
        assert inst["userDataReplaceOnChange"] is False
        assert "keyName" not in inst  # no SSH key pair: access is SSM Session Manager


def test_ami_is_resolved_by_exact_pinned_name(dev: mockrt.Run) -> None:
    calls = [c for c in dev.mocks.calls if c.token == "aws:ec2/getAmi:getAmi"]
    names = sorted(f["values"][0] for c in calls for f in c.args["filters"] if f["name"] == "name")
    assert names == sorted(versions.AL2023_AMI_NAMES.values())
    assert all(c.args["owners"] == ["amazon"] for c in calls)
    assert all("*" not in n for n in names)


def test_pinned_ami_ids_skip_the_lookup() -> None:
    run = mockrt.run_main(with_aws(amiIds={"arm64": "ami-0123456789abcdef0"}))
    assert run.named("arm64-1-instance").inputs["ami"] == "ami-0123456789abcdef0"
    assert len([c for c in run.mocks.calls if c.token == "aws:ec2/getAmi:getAmi"]) == 1


def test_user_data_is_the_shared_script_without_key_material(dev: mockrt.Run) -> None:
    script = node_script()
    for node in NODES:
        ud = user_data(dev, node)
        assert script in ud
        assert "PRIVATE KEY-----\n" not in ud and "MOCK:pki" not in ud
        vol_id = dev.registered[f"{node}-cache"]
        assert vol_id.typ == "aws:ebs/volume:Volume"
        assert "BKF_CERT_SOURCE=ssm\n" in ud
        assert f"BKF_SSM_PREFIX=/buildkit-farm/dev/{node}\n" in ud
        assert "BKF_DATA_DEVICE=/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0" in ud
        assert "BKF_DATA_FSTAB=1\n" in ud and "BKF_PER_BOOT_HOOK=1\n" in ud
        assert f'platforms = ["{"linux/arm64" if node.startswith("arm") else "linux/amd64"}"]' in ud


def test_nvme_path_drops_the_dash() -> None:
    assert nvme_device_path("vol-0abc") == "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc"


def test_cache_volume_survives_instance_replacement(dev: mockrt.Run) -> None:
    for node in NODES:
        vol = dev.named(f"{node}-cache").inputs
        assert vol["type"] == "gp3" and vol["encrypted"] is True
        assert (vol["size"], vol["iops"], vol["throughput"]) == (200, 3000, 250)
        assert vol["availabilityZone"] == dev.named(f"{node}-instance").inputs["availabilityZone"]
        assert dev.registered[f"{node}-cache"].opts.protect is True
        att = dev.registered[f"{node}-cache-attachment"]
        assert att.opts.delete_before_replace is True
        a = dev.named(f"{node}-cache-attachment").inputs
        assert a["volumeId"].startswith("vol-0") and a["instanceId"] == f"{node}-instance-id"
        assert a["stopInstanceBeforeDetaching"] is True
        # the volume is not a child block device of the instance (that would die with it)
        assert "ebsBlockDevices" not in dev.named(f"{node}-instance").inputs


def test_protect_can_be_switched_off() -> None:
    cfg = dict(DEV)
    cfg["buildkit-farm:volume"] = json.dumps({"sizeGb": 50, "protect": False})
    run = mockrt.run_main(cfg)
    assert run.registered["arm64-1-cache"].opts.protect is False
    assert run.named("arm64-1-cache").inputs["size"] == 50


def test_security_group_only_build_port_from_allowed_cidrs(dev: mockrt.Run) -> None:
    for node in NODES:
        sg = dev.named(f"{node}-sg").inputs
        assert sg["ingress"] == [{"protocol": "tcp", "fromPort": 1234, "toPort": 1234,
                                  "cidrBlocks": ["10.20.0.0/16", "203.0.113.0/24"],
                                  "description": "buildkitd gRPC (mTLS)"}]


def test_role_reads_only_its_own_certs(dev: mockrt.Run) -> None:
    """Evaluated over every policy of the role, the managed one included (the full table of
    cases is in test_least_privilege)."""
    for node in NODES:
        assume = json.loads(dev.named(f"{node}-role").inputs["assumeRolePolicy"])
        assert assume["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
        policies = role_policies(dev, node)
        readable = {f"{n}/{p}" for n in NODES for p in ("ca", "cert", "key")
                    if evaluate(policies, Request("ssm:GetParameter", param(n, p))).allowed
                    or evaluate(policies, Request("ssm:GetParameters", param(n, p))).allowed}
        assert readable == {f"{node}/ca", f"{node}/cert", f"{node}/key"}
        decryptable = {n for n in NODES if evaluate(policies, decrypt(param(n, "key"))).allowed}
        assert decryptable == {node}
        params = {dev.named(f"{node}-{p}").inputs["name"]: dev.named(f"{node}-{p}").inputs["type"]
                  for p in ("ca", "cert", "key")}
        assert params == {f"/buildkit-farm/dev/{node}/ca": "String", f"/buildkit-farm/dev/{node}/cert": "String",
                          f"/buildkit-farm/dev/{node}/key": "SecureString"}
        key = mockrt.secret_value(dev.named(f"{node}-key").inputs["value"])
        assert key == mockrt.fake_pem("EC PRIVATE KEY", f"pki-server-{node}-key")


def test_cert_rotation_reruns_on_new_cert(dev: mockrt.Run) -> None:
    for node in NODES:
        assoc = dev.named(f"{node}-cert-rotation").inputs
        assert assoc["name"] == "AWS-RunShellScript"
        assert assoc["targets"] == [{"key": "InstanceIds", "values": [f"{node}-instance-id"]}]
        assert assoc["parameters"]["commands"].startswith("/opt/buildkit-farm/bkf-node.sh certs  # cert ")
    a = dev.named("arm64-1-cert-rotation").inputs["parameters"]["commands"]
    b = dev.named("amd64-1-cert-rotation").inputs["parameters"]["commands"]
    assert a != b  # the fingerprint follows each node's own cert


def test_eip_is_the_endpoint_and_in_the_cert(dev: mockrt.Run) -> None:
    nodes = dev.values["nodes"]
    for n in nodes:
        ip = mockrt._fake_ip(f"{n['name']}-address-eip")
        assert n["endpoint"] == f"tcp://{ip}:1234" and n["serverName"] == ip
        csr = dev.named(f"pki-server-{n['name']}-csr").inputs
        assert csr["ipAddresses"] == [ip]
        assert dev.named(f"{n['name']}-eip-association").inputs["allocationId"] == f"eipalloc-{n['name']}-address-eip"


def test_dns_record_joins_the_sans_and_becomes_the_server_name() -> None:
    run = mockrt.run_main(with_aws(dnsZoneId="Z0123456789ABC", dnsDomain="build.example.com"))
    rec = run.named("arm64-1-address-dns").inputs
    assert rec["zoneId"] == "Z0123456789ABC" and rec["type"] == "A"
    assert rec["name"] == "arm64-1.build.example.com"
    csr = run.named("pki-server-arm64-1-csr").inputs
    assert csr["dnsNames"] == ["arm64-1.build.example.com"]
    assert run.values["nodes"][0]["serverName"] == "arm64-1.build.example.com"


def test_spot_keeps_the_volume_across_interruptions() -> None:
    run = mockrt.run_main(with_aws(spot=True))
    market = run.named("amd64-1-instance").inputs["instanceMarketOptions"]
    assert market == {"marketType": "spot", "spotOptions": {"instanceInterruptionBehavior": "stop",
                                                            "spotInstanceType": "persistent"}}
    assert "instanceMarketOptions" not in mockrt.run_main(DEV).named("amd64-1-instance").inputs


def test_the_drain_timeout_reaches_every_node() -> None:
    """buildkit.drainTimeoutSeconds is what bkf-node.sh waits for builds in flight on restart."""
    assert all("BKF_DRAIN_TIMEOUT=600\n" in user_data(mockrt.run_main(DEV), n) for n in NODES)  # the default
    run = mockrt.run_main(mockrt.with_section(DEV, "buildkit", drainTimeoutSeconds=45))
    assert all("BKF_DRAIN_TIMEOUT=45\n" in user_data(run, n) for n in NODES)
