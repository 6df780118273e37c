"""The AWS backend: an Elastic IP per node first, then the instance, volume and cert parameters;
with idleStop, waking stopped instances; with aws.cacheRepository, the ECR build cache."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from components.backends.aws.cache import CacheRepository, CacheRepositoryArgs
from components.backends.aws.components import AwsNode, AwsNodeAddress, AwsNodeAddressArgs, AwsNodeArgs, ssm_prefix
from components.backends.aws.config import AwsFarmConfig
from components.backends.aws.iam import ci_wake_policy
from components.backends.base import AddressComponents, Extras, HostInputs
from components.builder.readiness import aws_boot_log
from components.builder.wake import Wake
from components.node.render import render
from components.pki import Pki
from components.resources import ChildNamer

AwsAddresses = AddressComponents[AwsNodeAddress]


class AwsBackend:
    """EC2 nodes: an Elastic IP per node first, then the instance, volume and cert parameters."""

    def __init__(self, cfg: AwsFarmConfig, inputs: HostInputs, child: ChildNamer) -> None:
        self.cfg, self.inputs, self.child = cfg, inputs, child

    @staticmethod
    def read_inputs(cfg: AwsFarmConfig, stack: str) -> HostInputs:
        # everything an EC2 node needs is in the config or fetched by the node itself
        return HostInputs(stack=stack)

    def addresses(self) -> AwsAddresses:
        out = {}
        for n in self.cfg.nodes:
            name, opts = self.child(f"{n.name}-address")
            out[n.name] = AwsNodeAddress(name, AwsNodeAddressArgs(n, self.cfg.aws, self.cfg.buildkit.port), opts)
        return AwsAddresses(out)

    def nodes(self, addresses: AwsAddresses, pki: Pki) -> list[AwsNode]:
        out = []
        for n in self.cfg.nodes:
            bundle = render(self.cfg, n, cert_source="ssm", ssm_prefix=ssm_prefix(self.inputs.stack, n.name),
                            aws_region=self.cfg.region, data_fstab=True, init="systemd", per_boot_hook=True)
            name, opts = self.child(n.name)
            out.append(AwsNode(name, AwsNodeArgs(
                node=n, aws=self.cfg.aws, region=self.cfg.region, volume=self.cfg.volume, stack=self.inputs.stack,
                port=self.cfg.buildkit.port, allowed_cidrs=self.cfg.allowed_cidrs,
                address=addresses.by_node[n.name], bundle=bundle,
                server_cert=pki.servers[n.name], ca_cert_pem=pki.ca_cert_pem,
                metrics_port=self.cfg.metrics.port), opts))
        return out

    def extras(self, nodes: Sequence[pulumi.Resource]) -> Extras:
        wake = policy = cache = None
        region, names = self.cfg.region, [n.name for n in self.cfg.nodes]
        ids = pulumi.Output.all(*[n.instance_id for n in nodes if isinstance(n, AwsNode)])
        boot_logs = ids.apply(lambda i: {n: aws_boot_log(region, iid) for n, iid in zip(names, i, strict=True)})
        if self.cfg.idle_stop.enabled:
            # the create script wakes stopped instances; CI gets a policy for exactly those
            wake = ids.apply(lambda i: Wake(region, dict(zip(names, i, strict=True))))
            policy = ids.apply(lambda i: ci_wake_policy(region, i))
        if self.cfg.aws.cache_repository:
            cache_name, cache_opts = self.child("cache")
            cache = CacheRepository(cache_name, CacheRepositoryArgs(
                self.cfg.aws.cache_repository, self.cfg.aws.cache_expire_days, self.cfg.platforms()), cache_opts)
        return Extras(wake=wake, ci_wake_policy=policy, cache=cache, boot_logs=boot_logs)
