"""The whole stack config: one model per backend, told apart by the `backend` key."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, Discriminator, Field, Tag, model_validator

from components.config.aws import AwsNodeSpec, AwsSpec, Region, az_problem
from components.config.base import ConfigModel, Problem, problems, raw_list, raw_str
from components.config.fields import boolean, cidr, problem
from components.config.kubernetes import KubernetesNodeSpec, KubernetesSpec, cross_node_problems
from components.config.nodes import NodeSpec
from components.config.registries import RegistryHost, RegistrySpec, registry_problems
from components.config.sections import BuilderSpec, BuildkitSpec, IdleStopSpec, PkiSpec, VolumeSpec
from components.config.ssh import SshNodeSpec, SshSpec
from components.platforms import Platform

BACKENDS = ("aws", "kubernetes", "ssh")
Backend = Literal["aws", "kubernetes", "ssh"]
Cidr = Annotated[str, cidr()]


def _some_nodes(nodes: tuple[NodeSpec, ...]) -> tuple[NodeSpec, ...]:
    if not nodes:
        raise problem("no nodes configured; give at least one (e.g. {name: arm64-1, platform: linux/arm64})")
    return nodes


def _some_cidrs(cidrs: tuple[str, ...]) -> tuple[str, ...]:
    if not cidrs:
        raise problem("[] lets no client in; list the CIDR blocks CI connects from (e.g. [10.0.0.0/16])")
    return cidrs


BACKEND_DOC = "where nodes run: aws, kubernetes or ssh"
CIDRS_DOC = "CIDR blocks that may reach the build port (required for aws and kubernetes)"
#: aws and kubernetes open a port to the network: they need at least one CIDR
RequiredCidrs = Annotated[tuple[Cidr, ...], AfterValidator(_some_cidrs)]


def _nodes_field() -> Any:
    # validate_default: a missing `nodes` gets the same "no nodes configured" problem as []
    return Field((), validate_default=True,
                 description="the nodes, in builder order (the first gets builds without --platform)")


def _cidrs_field() -> Any:
    return Field((), validate_default=True, description=CIDRS_DOC)


class FarmBase(ConfigModel):
    """Keys every backend shares. The backend models below add `nodes` and their own section."""

    #: the sections that belong to one backend only
    backend_sections: ClassVar[tuple[str, ...]] = BACKENDS

    backend: Backend = Field(description=BACKEND_DOC)
    allow_open_ingress: Annotated[bool, boolean()] = Field(
        False, description="allow 0.0.0.0/0 or ::/0 in allowedCidrs (mTLS still applies)")
    allowed_cidrs: tuple[Cidr, ...] = Field((), description=CIDRS_DOC)
    volume: VolumeSpec = Field(VolumeSpec(), description="the build-state volume of every node")
    buildkit: BuildkitSpec = Field(BuildkitSpec(), description="what every node runs")
    pki: PkiSpec = Field(PkiSpec(), description="the farm's CA and certificates")
    builder: BuilderSpec = Field(BuilderSpec(), description="the buildx builder")
    registries: dict[RegistryHost, RegistrySpec] = Field(
        default_factory=dict, description="registry host -> how every node reaches it (mirrors, CA, plain HTTP)")
    idle_stop: IdleStopSpec = Field(IdleStopSpec(), description="stop idle nodes; CI wakes them")

    nodes: tuple[NodeSpec, ...]

    @classmethod
    def unknown_key_problem(cls, key: str, value: Any) -> str:
        if key in BACKENDS:
            return f"only used with backend {key} (this stack's backend is {cls.model_fields['backend'].default})"
        return super().unknown_key_problem(key, value)

    @classmethod
    def raw_problems(cls, data: Mapping[str, Any]) -> Iterable[Problem]:
        # Checked on the raw config so they are reported beside any bad field.
        seen: dict[str, int] = {}
        for i, node in enumerate(raw_list(data, "nodes")):
            name = raw_str(node, "name")
            if name is None:
                continue
            if name in seen:
                yield (("nodes", i, "name"), f"{name!r} is a duplicate of nodes[{seen[name]}].name; "
                       "node names must be unique")
            else:
                seen[name] = i
        open_ok = data.get("allowOpenIngress") in (True, "true")
        for i, c in enumerate(raw_list(data, "allowedCidrs")):
            try:
                net = ipaddress.ip_network(c, strict=True) if isinstance(c, str) else None
            except ValueError:
                continue
            if net is not None and net.prefixlen == 0 and not open_ok:
                yield (("allowedCidrs", i), f"{c!r} opens the build port to the whole internet; set "
                       "allowOpenIngress: true to allow it explicitly (mTLS still applies)")
        yield from registry_problems(data)
        yield from _idle_stop_problems(data)

    def platforms(self) -> list[Platform]:
        """Platforms in config order, each once."""
        seen: list[Platform] = []
        for n in self.nodes:
            if n.platform not in seen:
                seen.append(n.platform)
        return seen


class AwsFarmConfig(FarmBase):
    internal_keys: ClassVar[frozenset[str]] = frozenset({"aws:region"})

    backend: Literal["aws"] = Field("aws", description=BACKEND_DOC)
    nodes: Annotated[tuple[AwsNodeSpec, ...], AfterValidator(_some_nodes)] = _nodes_field()
    allowed_cidrs: RequiredCidrs = _cidrs_field()
    aws: AwsSpec = Field(AwsSpec(), description="EC2 placement and images")
    region: Region = Field(alias="aws:region", description="the AWS provider's region (`aws:region`)")

    @model_validator(mode="after")
    def _zone_in_region(self) -> Self:
        bad = az_problem(self.aws, self.region)
        if bad:
            raise problems([(("aws", "availabilityZone"), bad)])
        return self.settle(aws=self.aws.in_region(self.region))


class SshFarmConfig(FarmBase):
    backend: Literal["ssh"] = Field("ssh", description=BACKEND_DOC)
    nodes: Annotated[tuple[SshNodeSpec, ...], AfterValidator(_some_nodes)] = _nodes_field()
    ssh: SshSpec = Field({}, validate_default=True, description="how Pulumi reaches the hosts")


class KubernetesFarmConfig(FarmBase):
    backend: Literal["kubernetes"] = Field("kubernetes", description=BACKEND_DOC)
    nodes: Annotated[tuple[KubernetesNodeSpec, ...], AfterValidator(_some_nodes)] = _nodes_field()
    allowed_cidrs: RequiredCidrs = _cidrs_field()
    kubernetes: KubernetesSpec = Field(KubernetesSpec(), description="namespace, Services and resources")

    @classmethod
    def raw_problems(cls, data: Mapping[str, Any]) -> Iterable[Problem]:
        yield from super().raw_problems(data)
        yield from cross_node_problems(data)


def _idle_stop_problems(data: Mapping[str, Any]) -> Iterable[Problem]:
    """idleStop against the backend (over raw config, so it is reported beside any bad field)."""
    idle = data.get("idleStop")
    if not isinstance(idle, Mapping):
        return
    after = idle.get("afterMinutes")
    if isinstance(after, bool) or not isinstance(after, int | str) or not str(after).isdigit() or int(after) == 0:
        return
    backend = data.get("backend", "aws")
    if backend == "kubernetes":
        yield (("idleStop", "afterMinutes"), f"{after!r}: a Kubernetes node is a StatefulSet the cluster "
               "restarts, not a machine that stops (allowed with backend kubernetes: 0; scale the node pool "
               "instead)")
    elif backend == "ssh" and not idle.get("command"):
        yield (("idleStop", "command"), f"{idle.get('command', '')!r}: backend ssh needs the command that stops "
               f"these hosts when idleStop.afterMinutes is {after} (allowed: a command like 'systemctl poweroff')")


def _backend_of(data: Any) -> str:
    if isinstance(data, Mapping):
        return str(data.get("backend", "aws"))
    return "aws"


#: The stack config: `backend` picks the model (aws if unset).
FarmConfig = Annotated[
    Annotated[AwsFarmConfig, Tag("aws")] | Annotated[KubernetesFarmConfig, Tag("kubernetes")]
    | Annotated[SshFarmConfig, Tag("ssh")],
    Discriminator(_backend_of, custom_error_type="config",
                  custom_error_message=f"is not one of {', '.join(BACKENDS)}"),
]
AnyFarmConfig = AwsFarmConfig | KubernetesFarmConfig | SshFarmConfig
