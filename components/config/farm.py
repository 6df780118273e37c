"""The whole stack config: one model per backend, told apart by the `backend` key."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar

from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from components.backends.registry import BACKENDS as REGISTRY
from components.config.base import ConfigModel, Problem, beside, problems
from components.config.fields import Bool, Cidr, problem
from components.config.nodes import NodeSpec
from components.config.registries import Registries
from components.config.sections import (
    BuilderSpec,
    BuildkitSpec,
    IdleStopSpec,
    MetricsSpec,
    OtelSpec,
    PkiSpec,
    VolumeSpec,
)
from components.contracts.public_ranges import open_ranges
from components.platforms import Platform

#: the backends' names, sorted (components/backends/__init__.py is the registry)
BACKENDS: tuple[str, ...] = tuple(sorted(REGISTRY))
Backend = Literal[BACKENDS]  # type: ignore[valid-type]


def _some_nodes(nodes: tuple[NodeSpec, ...]) -> tuple[NodeSpec, ...]:
    if not nodes:
        raise problem("no nodes configured; give at least one (e.g. {name: arm64-1, platform: linux/arm64})")
    return nodes


def _unique_names(nodes: Any) -> Iterable[Problem]:
    seen: dict[str, int] = {}
    for i, node in enumerate(nodes if isinstance(nodes, list | tuple) else []):
        name = node.get("name") if isinstance(node, Mapping) else None
        if isinstance(name, str) and name in seen:
            yield ((i, "name"), f"{name!r} is a duplicate of nodes[{seen[name]}].name; node names must be unique")
        elif isinstance(name, str):
            seen[name] = i


def _some_cidrs(cidrs: tuple[str, ...]) -> tuple[str, ...]:
    if not cidrs:
        raise problem("[] lets no client in; list the CIDR blocks CI connects from (e.g. [10.0.0.0/16])")
    return cidrs


def _open_only_with_consent(cidr: str, info: ValidationInfo) -> str:
    if ipaddress.ip_network(cidr).prefixlen == 0 and not info.data.get("allow_open_ingress"):
        raise problem(f"{cidr!r} opens the build port to the whole internet; set "
                      "allowOpenIngress: true to allow it explicitly (mTLS still applies)")
    return cidr


def _union_not_open(cidrs: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
    # Not only /0 opens the port: 0.0.0.0/1 + 128.0.0.0/1 does too, as does any union of ranges over
    # a /8 of public space (the policy pack applies the same rule to the security group it reviews).
    # A /0 already has its own problem above.
    if info.data.get("allow_open_ingress") or any(ipaddress.ip_network(c).prefixlen == 0 for c in cidrs):
        return cidrs
    if found := open_ranges(cidrs):
        raise problem("; ".join(f"admits {o.describe()}" for o in found) +
                      "; set allowOpenIngress: true to allow it explicitly (mTLS still applies)")
    return cidrs


def _idle_stop_for_the_backend(idle: IdleStopSpec, info: ValidationInfo) -> IdleStopSpec:
    if idle.enabled and info.data.get("backend") == "kubernetes" and idle.command:
        # the stop is the node's StatefulSet scaled to 0 (docs/kubernetes.md: Scale to zero)
        raise problems([(("command",), f"{idle.command!r}: a Kubernetes node stops by scaling its StatefulSet to 0, "
                         "not by a command (allowed with backend kubernetes: empty)")])
    if idle.enabled and info.data.get("backend") == "ssh" and not idle.command:
        raise problems([(("command",), f"'': backend ssh needs the command that stops these hosts when idleStop."
                         f"afterMinutes is {idle.after_minutes} (allowed: a command like 'systemctl poweroff')")])
    return idle


def _metrics_for_the_backend(metrics: MetricsSpec, info: ValidationInfo) -> MetricsSpec:
    if not metrics.enabled:
        return metrics
    buildkit = info.data.get("buildkit")
    if buildkit is not None and metrics.port == buildkit.port:
        raise problems([(("port",), f"{metrics.port!r} is buildkit.port, the gRPC port; give the metrics "
                         "endpoint a port of its own (allowed: 1 to 65535, not buildkit.port; 0: off)")])
    return metrics


def fits_nodes(rule: Callable[[Any, Any], Iterable[Problem]]) -> AfterValidator:
    """A backend section's rule against the farm's nodes (declared before the section), every problem
    at once; skipped when the nodes are themselves bad (their own problems say why)."""
    def check(spec: Any, info: ValidationInfo) -> Any:
        found = list(rule(spec, info.data["nodes"])) if "nodes" in info.data else []
        if found:
            raise problems(found)
        return spec
    return AfterValidator(check)


N = TypeVar("N", bound=NodeSpec)
# validate_default: a missing `nodes` gets the same "no nodes configured" problem as []
Nodes = Annotated[tuple[N, ...], AfterValidator(_some_nodes), beside(_unique_names), Field(
    validate_default=True, description="the nodes, in builder order (the first gets builds without --platform)")]
BACKEND_DOC = f"where nodes run: {', '.join(BACKENDS[:-1])} or {BACKENDS[-1]}"
CIDRS_DOC = "CIDR blocks that may reach the build port (required for aws and kubernetes)"
ClientCidrs = Annotated[tuple[Annotated[Cidr, AfterValidator(_open_only_with_consent)], ...],
                      AfterValidator(_union_not_open)]
#: aws and kubernetes open a port to the network: they need at least one CIDR
RequiredCidrs = Annotated[ClientCidrs, AfterValidator(_some_cidrs), Field(validate_default=True, description=CIDRS_DOC)]


class FarmBase(ConfigModel):
    """Keys every backend shares. The backend models below add `nodes` and their own section."""

    #: provider config keys (`<provider>:<key>`) this backend takes besides its own (see loading.parse_config)
    provider_keys: ClassVar[tuple[str, ...]] = ()
    #: builder.readyTimeoutSeconds when unset: how long this backend's nodes may still be booting
    default_ready_timeout: ClassVar[int] = 0

    backend: Backend = Field(description=BACKEND_DOC)
    allow_open_ingress: Bool = Field(False, description=(
        "allow allowedCidrs whose union admits more than a /8 of public addresses, 0.0.0.0/0 included (mTLS still "
        "applies)"))
    allowed_cidrs: ClientCidrs = Field((), description=CIDRS_DOC)
    volume: VolumeSpec = Field(VolumeSpec(), description="the build-state volume of every node")
    buildkit: BuildkitSpec = Field(BuildkitSpec(), description="what every node runs")
    pki: PkiSpec = Field(PkiSpec(), description="the farm's CA and certificates")
    builder: BuilderSpec = Field(BuilderSpec(), description="the buildx builder")
    registries: Registries = Field(
        default_factory=dict, description="registry host -> how every node reaches it (mirrors, CA, plain HTTP)")
    idle_stop: Annotated[IdleStopSpec, AfterValidator(_idle_stop_for_the_backend)] = Field(
        IdleStopSpec(), description="stop idle nodes; CI wakes them")
    metrics: Annotated[MetricsSpec, AfterValidator(_metrics_for_the_backend)] = Field(
        MetricsSpec(), description="Prometheus metrics on every node, behind mutual TLS")
    otel: OtelSpec = Field(OtelSpec(), description="build traces from every node over OTLP")

    nodes: tuple[NodeSpec, ...]

    @model_validator(mode="after")
    def _emulate_fits_nodes(self) -> Self:
        # an emulated platform needs nodes of its own (their failure is what it covers) and a node of
        # another platform to run on: without both, the key would silently do nothing
        have = self.platforms()
        found: list[Problem] = []
        for i, p in enumerate(self.builder.emulate):
            if p not in have or len(have) < 2:
                found.append((("builder", "emulate", i), f"{p!r} cannot be emulated by this farm: emulation covers a "
                              "platform whose own nodes all fail the preflight, on a node of another platform "
                              f"(allowed: platforms of the nodes, with another platform beside: "
                              f"{', '.join(have) if len(have) > 1 else 'none'})"))
        if found:
            raise problems(found)
        return self

    def ready_timeout(self) -> int:
        """Seconds the builder's preflight waits for the nodes (0: it probes once)."""
        t = self.builder.ready_timeout_seconds
        return self.default_ready_timeout if t is None else t

    def platforms(self) -> list[Platform]:
        """Platforms in config order, each once."""
        return list(dict.fromkeys(n.platform for n in self.nodes))


#: Typing name for a parsed stack config: one backend's model (components/backends/<name>/config.py).
AnyFarmConfig = FarmBase
