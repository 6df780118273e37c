"""The config model: every problem reported at once, each naming key path, value and what is allowed."""

from __future__ import annotations

from typing import Any

import pytest

from components.backends.aws.config import AwsFarmConfig
from components.backends.ssh.config import SshFarmConfig
from components.config import ConfigError, parse_config
from components.platforms import instance_arch
from tests.unit import mockrt


def aws_raw(**over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "backend": "aws",
        "nodes": [{"name": "arm64-1", "platform": "linux/arm64"},
                  {"name": "amd64-1", "platform": "linux/amd64"}],
        "allowedCidrs": ["10.0.0.0/16"],
    }
    raw.update(over)
    return raw


def problems(raw: dict[str, Any], region: str | None = "us-east-1") -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(raw, aws_region=region)
    return e.value.problems


def test_dev_stack_parses_into_typed_objects() -> None:
    cfg_raw = mockrt.stack_config(mockrt.ROOT / "Pulumi.dev.yaml")
    import json
    raw = {k.split(":", 1)[1]: (json.loads(v) if v[:1] in "[{" else v)
           for k, v in cfg_raw.items() if k.startswith("buildkit-farm:")}
    cfg = parse_config(raw, aws_region=cfg_raw["aws:region"])
    assert isinstance(cfg, AwsFarmConfig)
    assert cfg.backend == "aws"
    assert [(n.name, n.platform, n.instance_type) for n in cfg.nodes] == [
        ("arm64-1", "linux/arm64", "c7g.2xlarge"), ("amd64-1", "linux/amd64", "c7i.2xlarge")]
    assert isinstance(cfg, AwsFarmConfig) and cfg.region == "eu-west-1"
    assert cfg.aws.availability_zone == "eu-west-1a"
    assert cfg.volume.size_gb == 200 and cfg.volume.protect is True
    assert cfg.platforms() == ["linux/arm64", "linux/amd64"]


def test_defaults_are_safe() -> None:
    cfg = parse_config(aws_raw(), aws_region="us-east-1")
    assert isinstance(cfg, AwsFarmConfig)
    assert cfg.pki.algorithm == "ECDSA" and cfg.pki.ecdsa_curve == "P256"
    assert cfg.pki.early_renewal_hours < cfg.pki.validity_hours
    assert cfg.allow_open_ingress is False
    # default instance types match each platform's architecture
    assert {n.platform: instance_arch(n.instance_type or "") for n in cfg.nodes} == {
        "linux/arm64": "arm64", "linux/amd64": "x86_64"}


@pytest.mark.parametrize(("over", "expected"), [
    ({"backend": "gcp"}, "backend: 'gcp' is not one of aws, kubernetes, ssh"),
    ({"nodes": [{"name": "a1", "platform": "linux/amd"}]},
     "nodes[0].platform: 'linux/amd' is not one of linux/amd64, linux/arm64"),
    ({"nodes": []}, "nodes: no nodes configured"),
    ({"nodes": [{"name": "x", "platform": "linux/amd64"}, {"name": "x", "platform": "linux/arm64"}]},
     "nodes[0].name: 'x' is not a node name"),
    ({"nodes": [{"name": "n1", "platform": "linux/amd64"}, {"name": "n1", "platform": "linux/arm64"}]},
     "nodes[1].name: 'n1' is a duplicate of nodes[0].name"),
    ({"nodes": [{"name": "Bad_Name", "platform": "linux/amd64"}]}, "nodes[0].name: 'Bad_Name' is not a node name"),
    ({"allowedCidrs": ["10.0.0.1/8"]}, "allowedCidrs[0]: '10.0.0.1/8' is not a CIDR block"),
    ({"allowedCidrs": ["banana"]}, "allowedCidrs[0]: 'banana' is not a CIDR block"),
    ({"allowedCidrs": ["0.0.0.0/0"]}, "allowedCidrs[0]: '0.0.0.0/0' opens the build port to the whole internet"),
    ({"allowedCidrs": ["::/0"]}, "allowedCidrs[0]: '::/0' opens the build port"),
    # open is any union over a /8 of public space, not only /0 (the policy pack says the same)
    ({"allowedCidrs": ["0.0.0.0/1", "128.0.0.0/1"]},
     "allowedCidrs: admits 0.0.0.0/1, 128.0.0.0/1: together 3,702,258,432 public IPv4 addresses, more than a /8 "
     "(16,777,216); set allowOpenIngress: true to allow it explicitly (mTLS still applies)"),
    ({"allowedCidrs": ["10.0.0.0/8", "1.0.0.0/8", "2.0.0.0/15"]},
     "allowedCidrs: admits 1.0.0.0/8, 2.0.0.0/15: together 16,908,288 public IPv4 addresses"),
    ({"volume": {"sizeGb": 5}}, "volume.sizeGb: 5 is not an integer from 20 to 16384 GiB"),
    ({"volume": {"sizeGb": 100000}}, "volume.sizeGb: 100000 is not an integer from 20 to 16384"),
    ({"volume": {"iops": 100}}, "volume.iops: 100 is not an integer from 3000 to 16000"),
    # YAML hands over "100" for 100, but a bool, a float or a padded string is never an integer
    ({"buildkit": {"drainTimeoutSeconds": True}}, "buildkit.drainTimeoutSeconds: True is not an integer from 0 to"),
    ({"volume": {"sizeGb": 100.0}}, "volume.sizeGb: 100.0 is not an integer from 20 to 16384 GiB"),
    ({"volume": {"sizeGb": " 100"}}, "volume.sizeGb: ' 100' is not an integer from 20 to 16384 GiB"),
    ({"volume": {"sizeGb": "5"}}, "volume.sizeGb: '5' is not an integer from 20 to 16384 GiB"),
    ({"volume": {"protect": 1}}, "volume.protect: 1 is not true or false"),
    ({"volume": {"protect": "yes"}}, "volume.protect: 'yes' is not true or false"),
    ({"pki": {"rsaBits": True}}, "pki.rsaBits: True is not one of 2048, 3072, 4096"),
    ({"aws": {"subnetId": 5}}, "aws.subnetId: 5 is not a subnet id like subnet-0abc1234"),
    ({"buildkit": {"version": "0.32"}}, "buildkit.version: '0.32' is not a release tag like v0.32.2"),
    ({"buildkit": {"version": "latest"}}, "buildkit.version: 'latest' is not a release tag"),
    ({"buildkit": {"image": "moby/buildkit:latest"}}, "buildkit.image: 'moby/buildkit:latest' is not an image pinned"),
    ({"buildkit": {"sha256": {"amd64": "abc"}}}, "buildkit.sha256.amd64: 'abc' is not a 64-digit"),
    ({"pki": {"validityHours": 100, "earlyRenewalHours": 200}},
     "pki.earlyRenewalHours: 200 is not shorter than pki.validityHours (100)"),
    ({"pki": {"algorithm": "DSA"}}, "pki.algorithm: 'DSA' is not one of ECDSA, RSA"),
    ({"pki": {"ecdsaCurve": "P224"}}, "pki.ecdsaCurve: 'P224' is not one of P256, P384"),
    ({"pki": {"rsaBits": 1024}}, "pki.rsaBits: 1024 is not one of 2048, 3072, 4096"),
    ({"pki": {"clients": []}}, "pki.clients: [] has no client"),
    ({"builder": {"name": "-bad"}}, "builder.name: '-bad' is not a buildx builder name"),
    ({"builder": {"configDir": "relative/dir"}}, "builder.configDir: 'relative/dir' is not an absolute path"),
    ({"builder": {"loadBound": 1}}, "builder.loadBound: 1 is not a number greater than 1 and at most 100, with at"),
    ({"builder": {"loadBound": 0.9}}, "builder.loadBound: 0.9 is not a number greater than 1"),
    ({"builder": {"loadBound": 1.2345}}, "builder.loadBound: 1.2345 is not a number greater than 1 and at most 100, "
                                         "with at most 3 decimals"),
    ({"builder": {"loadBound": 101}}, "builder.loadBound: 101 is not a number greater than 1"),
    ({"builder": {"loadBound": True}}, "builder.loadBound: True is not a number greater than 1"),
    ({"builder": {"loadBound": "nan"}}, "builder.loadBound: 'nan' is not a number greater than 1"),
    ({"nodes": [{"name": "arm64-1", "platform": "linux/amd64", "instanceType": "c7g.large"}]},
     "nodes[0].instanceType: 'c7g.large' is an arm64 type, but the node's platform is linux/amd64 (allowed: an x86_64"),
    ({"nodes": [{"name": "amd64-1", "platform": "linux/arm64", "instanceType": "m7i.large"}]},
     "nodes[0].instanceType: 'm7i.large' is an x86_64 type, but the node's platform is linux/arm64 (allowed: an arm64"),
    ({"aws": {"availabilityZone": "eu-west-1a"}},
     "aws.availabilityZone: 'eu-west-1a' is not in aws:region 'us-east-1'"),
    ({"aws": {"amiIds": {"arm64": "ubuntu"}}}, "aws.amiIds.arm64: 'ubuntu' is not an AMI id"),
    ({"aws": {"dnsZoneId": "Z123ABC"}}, "aws.dnsZoneId/aws.dnsDomain"),
    ({"volumes": {}}, "volumes: unknown key"),
    ({"volume": {"size": 10}}, "volume.size: unknown key (allowed: iops, protect, sizeGb, throughputMbps)"),
    # Python field names are for Python callers, not the stack config
    ({"volume": {"size_gb": 200}}, "volume.size_gb: unknown key (allowed: iops, protect, sizeGb, throughputMbps)"),
    ({"nodes": [{"name": "a1", "platform": "linux/arm64", "sshPort": 22}]},
     "nodes[0].sshPort: 22 is only allowed with backend ssh"),
    ({"nodes": [{"name": "a1", "platform": "linux/arm64", "host": "a.example"}]},
     "nodes[0].host: 'a.example' is only allowed with backend kubernetes or ssh"),
    ({"ssh": {"privateKeyPath": "/k"}}, "ssh: only used with backend ssh (this stack's backend is aws)"),
])
def test_each_problem_names_key_value_and_allowed(over: dict[str, Any], expected: str) -> None:
    found = problems(aws_raw(**over))
    assert any(expected in p for p in found), found


def test_yaml_strings_for_numbers_and_booleans_are_read_as_such() -> None:
    raw = aws_raw(volume={"sizeGb": "200", "protect": "false"}, pki={"algorithm": "RSA", "rsaBits": "4096"})
    cfg = parse_config(raw, aws_region="us-east-1")
    assert (cfg.volume.size_gb, cfg.volume.protect, cfg.pki.rsa_bits) == (200, False, 4096)


def test_provider_keys_reach_the_backend_that_declares_them() -> None:
    cfg = parse_config(aws_raw(), provider_config={"aws:region": "eu-west-1", "kubernetes:context": "kind"})
    assert isinstance(cfg, AwsFarmConfig) and (cfg.region, cfg.aws.availability_zone) == ("eu-west-1", "eu-west-1a")
    ssh = {"backend": "ssh", "ssh": {"privateKeyPath": "/k"}, "nodes": [
        {"name": "a1", "platform": "linux/arm64", "host": "10.1.2.3"}]}
    assert isinstance(parse_config(ssh, provider_config={"aws:region": "eu-west-1"}), SshFarmConfig)
    # aws_region= is the older spelling of the same thing
    assert parse_config(aws_raw(), aws_region="eu-west-1") == cfg


def test_open_ingress_needs_explicit_opt_in() -> None:
    cfg = parse_config(aws_raw(allowedCidrs=["0.0.0.0/0"], allowOpenIngress=True), aws_region="us-east-1")
    assert cfg.allowed_cidrs == ("0.0.0.0/0",)
    halves = ["0.0.0.0/1", "128.0.0.0/1"]
    cfg = parse_config(aws_raw(allowedCidrs=halves, allowOpenIngress=True), aws_region="us-east-1")
    assert cfg.allowed_cidrs == tuple(halves)
    # private space is nobody's internet, and exactly a /8 of public space is still allowed
    ok = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "1.0.0.0/8"]
    assert parse_config(aws_raw(allowedCidrs=ok), aws_region="us-east-1").allowed_cidrs == tuple(ok)


def test_all_problems_are_reported_at_once() -> None:
    raw = aws_raw(
        nodes=[{"name": "arm64-1", "platform": "linux/amd"}, {"name": "arm64-1", "platform": "linux/arm64"}],
        allowedCidrs=["0.0.0.0/0", "300.1.1.1/8"],
        volume={"sizeGb": 1},
        buildkit={"version": "v0.32"},
        pki={"validityHours": 48, "earlyRenewalHours": 48},
    )
    found = problems(raw, region="mars-1")
    paths = {p.split(":")[0] for p in found}
    assert {"nodes[0].platform", "nodes[1].name", "allowedCidrs[0]", "allowedCidrs[1]", "volume.sizeGb",
            "buildkit.version", "pki.earlyRenewalHours", "aws"} <= paths, found
    # the message lists them all, one per line
    with pytest.raises(ConfigError) as e:
        parse_config(raw, aws_region="mars-1")
    assert str(e.value).count("\n  - ") == len(found) >= 8


def test_missing_region_and_cidrs_for_aws() -> None:
    raw = aws_raw()
    del raw["allowedCidrs"]
    found = problems(raw, region=None)
    assert any(p.startswith("aws:region: missing") for p in found)
    assert any(p.startswith("allowedCidrs: [] lets no client in") for p in found)


def test_ssh_backend_needs_hosts_and_key() -> None:
    found = problems({"backend": "ssh", "nodes": [{"name": "h1", "platform": "linux/amd64"}]})
    assert any(p.startswith("nodes[0].host: missing") for p in found), found
    assert any(p.startswith("ssh.privateKeyPath: missing") for p in found), found


def test_host_platform_only_for_ssh() -> None:
    found = problems(aws_raw(nodes=[{"name": "a1", "platform": "linux/arm64", "hostPlatform": "linux/amd64"}]))
    assert any(p.startswith("nodes[0].hostPlatform: 'linux/amd64' is only allowed with backend ssh") for p in found)
    cfg = parse_config({"backend": "ssh", "ssh": {"privateKeyPath": "/k"}, "nodes": [
        {"name": "a1", "platform": "linux/arm64", "host": "10.1.2.3", "hostPlatform": "linux/amd64"},
        {"name": "b1", "platform": "linux/amd64", "host": "b.example", "hostPlatform": "linux/amd64"}]})
    assert isinstance(cfg, SshFarmConfig)
    assert cfg.nodes[0].host_platform == "linux/amd64"
    assert cfg.nodes[1].host_platform is None  # same as platform: not emulated


def test_unknown_backend_skips_backend_specific_noise() -> None:
    found = problems(aws_raw(backend="gcp"), region=None)
    assert found == ["backend: 'gcp' is not one of aws, kubernetes, ssh"]


@pytest.mark.parametrize(("itype", "arch"), [
    ("c7g.xlarge", "arm64"), ("m7gd.large", "arm64"), ("c6gn.16xlarge", "arm64"), ("t4g.nano", "arm64"),
    ("a1.large", "arm64"), ("x2gd.xlarge", "arm64"), ("im4gn.large", "arm64"), ("c8g.large", "arm64"),
    ("c7i.xlarge", "x86_64"), ("m5.large", "x86_64"), ("c6a.large", "x86_64"), ("g4dn.xlarge", "x86_64"),
    ("m7i-flex.large", "x86_64"), ("t3.micro", "x86_64"), ("g5.xlarge", "x86_64"),
])
def test_instance_arch(itype: str, arch: str) -> None:
    assert instance_arch(itype) == arch
