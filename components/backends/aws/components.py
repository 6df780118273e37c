"""The AWS backend's components: an EC2 build node whose cache outlives the instance.

Two components per node, created in dependency order:

* ``AwsNodeAddress``: the Elastic IP or the configured private IP (and optional Route 53
  record) clients dial; it exists before the server cert that names it.
* ``AwsNode``: security group, role, cert parameters in SSM Parameter Store, the
  encrypted gp3 data volume with its own attachment, and the instance whose user
  data is the shared bootstrap payload (no key material in it).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.backends.aws.config import AwsNodeSpec, AwsSpec
from components.backends.aws.iam import ASSUME_EC2, OTEL_HEADERS_PARAMETER, SSM_CORE_POLICY, cert_read_policy
from components.config.sections import VolumeSpec
from components.node.address import NodeAddress
from components.node.payload import USER_DATA_LIMIT
from components.node.render import NodeBundle
from components.pki import IssuedCert
from components.platforms import instance_arch
from components.versions import AL2023_AMI_OWNER

#: The device name the attachment asks for; on Nitro instances the volume shows
#: up as NVMe and is found by its stable id instead (see ``nvme_device_path``).
ATTACH_DEVICE = "/dev/sdf"


def nvme_device_path(volume_id: str) -> str:
    """The stable device path of an EBS volume on a Nitro instance."""
    return f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_{volume_id.replace('-', '')}"


def gzip_user_data(payload: str) -> str:
    """Base64 of the gzipped payload (mtime 0: the same payload gives the same bytes)."""
    packed = gzip.compress(payload.encode(), compresslevel=9, mtime=0)
    if len(packed) > USER_DATA_LIMIT:
        raise ValueError(f"user data is {len(packed)} bytes gzipped; EC2 allows {USER_DATA_LIMIT}")
    return base64.b64encode(packed).decode()


def ssm_prefix(stack: str, node: str) -> str:
    return f"/buildkit-farm/{stack}/{node}"


def cert_rotation_command(cert_pem: str) -> str:
    """The SSM Run Command body; the cert's fingerprint makes it change (and re-run) on renewal."""
    fp = hashlib.sha256(cert_pem.encode()).hexdigest()[:16]
    return f"/opt/buildkit-farm/bkf-node.sh certs  # cert {fp}"


@dataclass(frozen=True)
class AwsNodeAddressArgs:
    node: AwsNodeSpec
    aws: AwsSpec
    port: int


class AwsNodeAddress(pulumi.ComponentResource):
    """What clients dial, made before the cert that names it: an Elastic IP (aws.endpoint public) or
    the node's configured private IP (private: nothing to create), and an optional DNS record.

    Both addresses a node has go in its cert: the Elastic IP and, when configured, the private IP.
    The private IP is fixed in config (nodes[].privateIp, in aws.subnetId) because EC2 assigns
    one only when the instance exists, and the instance boots with the cert that must name it.
    """

    public_ip: pulumi.Output[str] | None
    """The Elastic IP (None with aws.endpoint private)."""
    allocation_id: pulumi.Output[str] | None
    """The Elastic IP's allocation id (None with aws.endpoint private)."""
    address: NodeAddress
    """What clients dial and the server cert names."""

    def __init__(self, name: str, args: AwsNodeAddressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("buildkit-farm:index:AwsNodeAddress", name, None, opts)
        node, spec, port = args.node, args.aws, args.port
        private = [node.private_ip] if node.private_ip else []
        ip: pulumi.Output[str]
        if spec.endpoint == "private":
            if not node.private_ip:
                raise ValueError(f"{node.name}: aws.endpoint private needs the node's privateIp")
            self.public_ip = self.allocation_id = None
            ip = pulumi.Output.from_input(node.private_ip)
            addresses: list[pulumi.Input[str]] = [ip]
        else:
            eip = aws.ec2.Eip(f"{name}-eip", domain="vpc", tags={"Name": name},
                              opts=pulumi.ResourceOptions(parent=self))
            self.public_ip = ip = eip.public_ip
            self.allocation_id = eip.allocation_id
            addresses = [ip, *private]
        host: pulumi.Output[str] = ip
        sans: list[pulumi.Input[str]] = addresses
        if spec.dns_zone_id and spec.dns_domain:
            fqdn = f"{node.name}.{spec.dns_domain}"
            record = aws.route53.Record(f"{name}-dns", zone_id=spec.dns_zone_id, name=fqdn,
                                        type="A", ttl=300, records=[ip],
                                        opts=pulumi.ResourceOptions(parent=self))
            host = record.fqdn
            sans = [record.fqdn, *addresses]
        self.address = NodeAddress(
            name=node.name, platform=node.platform, port=port, host=host,
            sans=pulumi.Output.all(*sans, *node.extra_sans).apply(list))
        self.register_outputs({"public_ip": self.public_ip} if self.public_ip is not None else {})


def ingress_ports(port: int, metrics_port: int) -> list[tuple[int, str]]:
    """The node's open ports and what each serves: the build port, and metrics.port when it is on."""
    return [(port, "buildkitd gRPC (mTLS)"), *([(metrics_port, "metrics (mTLS)")] if metrics_port else [])]


@dataclass(frozen=True)
class AwsNodeArgs:
    node: AwsNodeSpec
    aws: AwsSpec
    #: the provider's region (aws:region)
    region: str
    volume: VolumeSpec
    stack: str
    port: int
    allowed_cidrs: tuple[str, ...]
    address: AwsNodeAddress
    #: what the node runs from (components/node/render.py), shipped as user data
    bundle: NodeBundle
    server_cert: IssuedCert
    ca_cert_pem: pulumi.Input[str]
    #: metrics.port (0: off): the node's mTLS metrics endpoint, opened to allowedCidrs only
    metrics_port: int = 0


class AwsNode(pulumi.ComponentResource):
    """One EC2 instance running buildkitd, with its cache on a separate EBS volume."""

    instance_id: pulumi.Output[str]
    """The EC2 instance id (for SSM Session Manager: `aws ssm start-session --target`)."""
    volume_id: pulumi.Output[str]
    """The cache volume; it survives instance replacement."""
    endpoint: pulumi.Output[str]
    """tcp://host:port clients dial."""

    def __init__(self, name: str, args: AwsNodeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("buildkit-farm:index:AwsNode", name, None, opts)
        node, spec = args.node, args.aws
        child = pulumi.ResourceOptions(parent=self)
        arch = instance_arch(node.instance_type)
        prefix = ssm_prefix(args.stack, node.name)

        sg = aws.ec2.SecurityGroup(
            f"{name}-sg",
            description=f"buildkit-farm {node.name}: buildkitd (mTLS) only",
            vpc_id=spec.vpc_id,
            ingress=[aws.ec2.SecurityGroupIngressArgs(
                protocol="tcp", from_port=port, to_port=port, cidr_blocks=list(args.allowed_cidrs),
                description=what) for port, what in ingress_ports(args.port, args.metrics_port)],
            egress=[aws.ec2.SecurityGroupEgressArgs(
                protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"],
                description="registries, package mirrors, SSM")],
            tags={"Name": name}, opts=child)

        role = aws.iam.Role(f"{name}-role", assume_role_policy=ASSUME_EC2, tags={"Name": name},
                            opts=child)
        aws.iam.RolePolicyAttachment(f"{name}-ssm-core", role=role.name, policy_arn=SSM_CORE_POLICY,
                                     opts=child)
        aws.iam.RolePolicy(f"{name}-read-certs", role=role.id,
                           policy=cert_read_policy(args.region, prefix, bool(args.bundle.otel_headers)), opts=child)
        profile = aws.iam.InstanceProfile(f"{name}-profile", role=role.name, opts=child)

        params = [
            aws.ssm.Parameter(f"{name}-ca", name=f"{prefix}/ca", type="String",
                              value=args.ca_cert_pem, opts=child),
            aws.ssm.Parameter(f"{name}-cert", name=f"{prefix}/cert", type="String",
                              value=args.server_cert.cert_pem, opts=child),
            aws.ssm.Parameter(f"{name}-key", name=f"{prefix}/key", type="SecureString",
                              value=args.server_cert.private_key_pem, opts=child),
        ]
        rotation_inputs: list[pulumi.Input[str]] = [args.server_cert.cert_pem]
        if args.bundle.otel_headers:
            # config otel.headers: a secret like the key, so it travels like the key (never in user data)
            headers = aws.ssm.Parameter(f"{name}-otel-headers", name=f"{prefix}/{OTEL_HEADERS_PARAMETER}",
                                        type="SecureString", value=pulumi.Output.secret(args.bundle.otel_headers),
                                        opts=child)
            params.append(headers)
            # a new value is a new parameter version: the rotation command changes and re-runs
            rotation_inputs.append(headers.version.apply(lambda v: f" otel-headers v{v}"))

        volume = aws.ebs.Volume(
            f"{name}-cache",
            availability_zone=spec.availability_zone,
            size=args.volume.size_gb, type="gp3", iops=args.volume.iops,
            throughput=args.volume.throughput_mbps, encrypted=True,
            tags={"Name": f"{name}-cache", "buildkit-farm/node": node.name},
            # The cache outlives instances; `protect` also refuses `pulumi destroy`.
            opts=pulumi.ResourceOptions(parent=self, protect=args.volume.protect))

        if arch in spec.ami_ids:
            ami_id: pulumi.Input[str] = spec.ami_ids[arch]
        else:
            # Exact name + owner: deterministic, so a newer upstream AMI never
            # replaces the instance; bumping the pinned name is the deliberate act.
            ami_id = aws.ec2.get_ami_output(
                owners=[AL2023_AMI_OWNER], most_recent=True,
                filters=[aws.ec2.GetAmiFilterArgs(name="name", values=[spec.ami_name(arch)]),
                         aws.ec2.GetAmiFilterArgs(name="architecture", values=[arch])],
                opts=pulumi.InvokeOptions(parent=self)).id

        def user_data(volume_id: str) -> str:
            return gzip_user_data(args.bundle.payload("install", data_device=nvme_device_path(volume_id)))

        market = None
        if spec.spot:
            market = aws.ec2.InstanceInstanceMarketOptionsArgs(
                market_type="spot",
                spot_options=aws.ec2.InstanceInstanceMarketOptionsSpotOptionsArgs(
                    # stop (not terminate) on interruption: the instance and its
                    # attached cache volume come back when capacity returns
                    instance_interruption_behavior="stop", spot_instance_type="persistent"))

        instance = aws.ec2.Instance(
            f"{name}-instance",
            ami=ami_id,
            instance_type=node.instance_type,
            availability_zone=None if spec.subnet_id else spec.availability_zone,
            subnet_id=spec.subnet_id,
            vpc_security_group_ids=[sg.id],
            iam_instance_profile=profile.name,
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
                http_endpoint="enabled", http_tokens="required", http_put_response_hop_limit=1),
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                encrypted=True, volume_type="gp3", volume_size=spec.root_volume_gb),
            # gzip+base64: cloud-init unpacks it; the script alone is near the 16 KiB limit
            user_data_base64=volume.id.apply(user_data),
            # a changed payload is applied by stop/start + the per-boot hook, not replacement
            user_data_replace_on_change=False,
            instance_market_options=market,
            # idleStop powers the OS off: stop, never terminate (unset when off: inputs as before)
            instance_initiated_shutdown_behavior="stop" if args.bundle.idle else None,
            # the address the cert names (unset: EC2 picks one, inputs as before)
            private_ip=node.private_ip,
            tags={"Name": name, "buildkit-farm/platform": node.platform},
            # a fixed private IP is held by the old instance until it is gone: delete it first
            opts=pulumi.ResourceOptions(parent=self, depends_on=params,
                                        delete_before_replace=True if node.private_ip else None))

        aws.ec2.VolumeAttachment(
            f"{name}-cache-attachment", device_name=ATTACH_DEVICE, volume_id=volume.id,
            instance_id=instance.id, stop_instance_before_detaching=True,
            # detach from the old instance before attaching to its replacement
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True))
        if args.address.allocation_id is not None:
            aws.ec2.EipAssociation(f"{name}-eip-association", allocation_id=args.address.allocation_id,
                                   instance_id=instance.id, opts=child)

        # Renewed certs reach the node without replacing it: SSM Run Command
        # re-runs `bkf-node.sh certs` whenever the cert (and so the command) changes.
        aws.ssm.Association(
            f"{name}-cert-rotation", name="AWS-RunShellScript",
            targets=[aws.ssm.AssociationTargetArgs(key="InstanceIds", values=[instance.id])],
            parameters={"commands": pulumi.Output.all(*rotation_inputs).apply(
                lambda v: cert_rotation_command(v[0]) + "".join(v[1:]))},
            opts=pulumi.ResourceOptions(parent=self, depends_on=params))

        self.instance_id = instance.id
        self.volume_id = volume.id
        self.endpoint = args.address.address.endpoint
        self.register_outputs({"instance_id": self.instance_id, "volume_id": self.volume_id,
                               "endpoint": self.endpoint})
