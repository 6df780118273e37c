"""The AWS backend's config: its section (`aws:`) and its nodes."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from components import versions
from components.config.base import ConfigModel, Problem, problems
from components.config.farm import BACKEND_DOC, FarmBase, Nodes, RequiredCidrs, fits_nodes
from components.config.fields import DNS_NAME, Bool, Int, allows, integer, matching
from components.config.nodes import NodeSpec
from components.platforms import DEFAULT_INSTANCE_TYPE, EC2_ARCH_OF, instance_arch

Region = Annotated[str, matching(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$", "an AWS region like us-east-1")]
Ec2Arch = Annotated[str, matching(r"^(arm64|x86_64)$", "arm64 or x86_64")]
AmiId = Annotated[str, matching(r"^ami-[0-9a-f]{8,17}$", "an AMI id like ami-0abc12345")]


def _private_ipv4(value: str) -> str:
    if not ipaddress.IPv4Address(value).is_private:
        raise ValueError(value)
    return value


PrivateIpv4 = Annotated[str, AfterValidator(_private_ipv4), allows("a private IPv4 address like 10.0.1.20")]
AmiName = Annotated[str, matching(r"^al2023-ami-[\w.-]+$", "an exact Amazon Linux 2023 AMI name (al2023-ami-...)")]


class AwsNodeSpec(NodeSpec):
    instance_type: Annotated[str, matching(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$", "an EC2 instance type like c7g.xlarge")] \
        = Field(default_factory=lambda data: DEFAULT_INSTANCE_TYPE.get(data.get("platform"), ""),
                description="aws: EC2 instance type of the platform's architecture; empty: "
                f"{DEFAULT_INSTANCE_TYPE['linux/arm64']} / {DEFAULT_INSTANCE_TYPE['linux/amd64']}")
    private_ip: PrivateIpv4 | None = Field(
        None, description="aws: the instance's fixed private IP, a free address of aws.subnetId (required with "
        "aws.endpoint private); it joins the cert SANs")

    @model_validator(mode="after")
    def _type_matches_platform(self) -> Self:
        want, have = EC2_ARCH_OF[self.platform], instance_arch(self.instance_type)
        if have != want:
            raise problems([(("instanceType",),
                             f"{self.instance_type!r} is an {have} type, but the node's platform is "
                             f"{self.platform} (allowed: an {want} instance type, e.g. "
                             f"{DEFAULT_INSTANCE_TYPE[self.platform]})")])
        return self


class AwsSpec(ConfigModel):
    """Placement and images of the EC2 nodes (the region is the provider's `aws:region`)."""

    availability_zone: Annotated[str, matching(r"^([a-z]{2}(-gov)?-[a-z]+-\d[a-z])?$",
                                               "an availability zone like us-east-1a")] = Field(
        "", description="AZ of every instance and its volume; empty: `<region>a`")
    subnet_id: Annotated[str, matching(r"^subnet-[0-9a-f]{8,17}$", "a subnet id like subnet-0abc1234")] | None = Field(
        None, description="subnet of the instances; none: the default VPC's")
    vpc_id: Annotated[str, matching(r"^vpc-[0-9a-f]{8,17}$", "a VPC id like vpc-0abc1234")] | None = Field(
        None, description="VPC of the security groups; none: the default VPC")
    ami_ids: dict[Ec2Arch, AmiId] = Field(
        default_factory=dict, description="arch (arm64, x86_64) -> exact AMI id; skips the name lookup")
    ami_names: dict[Ec2Arch, AmiName] = Field(
        default_factory=dict, description="arch -> exact AL2023 AMI name looked up (owner amazon); "
        "defaults pinned in components/versions.py")
    endpoint: Literal["public", "private"] = Field(
        "public", description="what clients dial: public (an Elastic IP) or private (each node's privateIp, no "
        "Elastic IP: for runners inside the VPC or a peered network)")
    spot: Bool = Field(False, description="persistent spot instances that stop on interruption")
    dns_zone_id: Annotated[str, matching(r"^Z[A-Z0-9]{1,32}$", "a Route 53 hosted zone id")] | None = Field(
        None, description="Route 53 zone for `<node>.<dnsDomain>` records (with dnsDomain)")
    dns_domain: Annotated[str, matching(DNS_NAME, "a DNS domain")] | None = Field(
        None, description="domain of the node records; the name joins the cert SANs and becomes the server name")
    root_volume_gb: Annotated[Int, integer(8, 1024, " GiB")] = Field(30, description="encrypted root volume size")
    cache_repository: Annotated[str, matching(
        r"^(?=.{2,256}$)(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$",
        "an ECR repository name like buildkit-farm/cache")] | None = Field(
        None, description="an ECR repository for registry build cache, with a lifecycle rule (exports cacheRef "
        "and cacheFlags); unset: none")
    cache_expire_days: Annotated[Int, integer(1, 365, " days")] = Field(
        14, description="cache in cacheRepository not pushed again for this long expires")

    @model_validator(mode="after")
    def _dns_pair(self) -> Self:
        if (self.dns_zone_id is None) != (self.dns_domain is None):
            raise problems([(("dnsZoneId",), f"{self.dns_zone_id!r}/aws.dnsDomain {self.dns_domain!r}: "
                             "give both of aws.dnsZoneId/aws.dnsDomain or neither")])
        return self

    def ami_name(self, arch: str) -> str:
        return self.ami_names.get(arch) or versions.AL2023_AMI_NAMES[arch]

    def in_region(self, region: str) -> AwsSpec:
        """The section completed with what derives from the region (the default AZ)."""
        if self.availability_zone:
            return self
        return self.model_copy(update={"availability_zone": f"{region}a"})


def endpoint_problems(spec: AwsSpec, nodes: tuple[AwsNodeSpec, ...]) -> Iterable[Problem]:
    """Rules between the aws section and the nodes' private IPs (locations relative to the section)."""
    if spec.endpoint == "private":
        if spec.subnet_id is None:
            yield (("subnetId",), "missing; aws.endpoint private needs the subnet the nodes' privateIp addresses "
                   "are in (allowed: a subnet id like subnet-0abc1234)")
        if missing := [f"nodes[{i}]" for i, n in enumerate(nodes) if n.private_ip is None]:
            yield (("endpoint",), f"'private' needs a privateIp on every node: {', '.join(missing)} "
                   f"{'lacks' if len(missing) == 1 else 'lack'} one "
                   "(allowed: public, or a free address of aws.subnetId on each node)")
    elif spec.subnet_id is None and any(n.private_ip for n in nodes):
        yield (("subnetId",), "missing; nodes[].privateIp must name an address of a subnet you give here")
    seen: dict[str, int] = {}
    for i, n in enumerate(nodes):
        if n.private_ip is not None and n.private_ip in seen:
            yield (("endpoint",), f"nodes[{i}].privateIp {n.private_ip!r} is also nodes[{seen[n.private_ip]}]'s; "
                   "each node needs its own address")
        elif n.private_ip is not None:
            seen[n.private_ip] = i


def az_problem(spec: AwsSpec, region: str) -> str | None:
    if spec.availability_zone and not re.match(rf"^{re.escape(region)}[a-z]$", spec.availability_zone):
        return f"{spec.availability_zone!r} is not in aws:region {region!r}"
    return None


def _zone_in_region(spec: AwsSpec, info: ValidationInfo) -> AwsSpec:
    if (region := info.data.get("region")) is None:
        return spec  # a bad region is its own problem
    if bad := az_problem(spec, region):
        raise problems([(("availabilityZone",), bad)])
    return spec.in_region(region)


class AwsFarmConfig(FarmBase):
    provider_keys: ClassVar[tuple[str, ...]] = ("aws:region",)
    # a first `up` reaches the builder while cloud-init still downloads and starts BuildKit
    default_ready_timeout: ClassVar[int] = 900

    backend: Literal["aws"] = Field("aws", description=BACKEND_DOC)
    nodes: Nodes[AwsNodeSpec] = ()
    allowed_cidrs: RequiredCidrs = ()
    region: Region = Field(alias="aws:region", description="the AWS provider's region (`aws:region`)")
    # after the region: the default availability zone derives from it
    aws: Annotated[AwsSpec, AfterValidator(_zone_in_region), fits_nodes(endpoint_problems)] = Field(
        AwsSpec(), validate_default=True, description="EC2 placement and images")
