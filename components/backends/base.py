"""What every backend provides, in the order the farm asks for it.

``read_inputs(cfg, stack)`` reads what the config points at outside the stack (files, keys)
before anything is created, so a missing file is a config error. ``addresses()`` makes what
clients dial (it must exist before the server certs that name it) and returns the backend's own
typed handle; ``nodes(addresses, pki)`` takes that handle and the issued certs and starts the
daemons: a backend cannot make nodes before addresses, there is nothing to pass. ``extras(nodes)``
adds what only some backends have (waking stopped nodes, a build cache) as ``Extras``, so the
farm never asks which backend it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import pulumi

from components.node.address import NodeAddress

if TYPE_CHECKING:
    from components.builder.wake import AnyWake
    from components.pki import Pki
    from components.resources import ChildNamer


@dataclass(frozen=True)
class HostInputs:
    """What was read from outside the stack config: files and secrets it points at."""

    stack: str
    #: ssh: private key (secret)
    ssh_private_key: pulumi.Input[str] | None = None
    #: ssh: node name -> (local artifact path, sha256)
    artifacts: dict[str, tuple[str, str]] = field(default_factory=dict)


class BuildCache(Protocol):
    """A registry for build cache the farm provisions (the stack's cacheRef and cacheFlags)."""

    repository_url: pulumi.Output[str]
    flags: pulumi.Output[dict[str, dict[str, str]]]


@dataclass(frozen=True)
class Extras:
    """What a backend adds besides its nodes; each part None where it has none."""

    #: the create script wakes stopped (aws) or scaled-down (kubernetes) nodes first
    wake: pulumi.Output[AnyWake] | None = None
    #: aws: the IAM policy CI needs to wake them (stack output ciWakePolicy)
    ci_wake_policy: pulumi.Output[str] | None = None
    #: kubernetes: the token (secret) and cluster CA CI scales them with (ciWakeToken, ciWakeCaCert)
    ci_wake_token: pulumi.Output[str] | None = None
    ci_wake_ca_cert: pulumi.Output[str] | None = None
    #: stack outputs cacheRef and cacheFlags
    cache: BuildCache | None = None
    #: node name -> how to read its boot log (the preflight names it when a node never comes up)
    boot_logs: pulumi.Output[dict[str, str]] | None = None


class Addresses(Protocol):
    """A backend's handle on what it made in phase one."""

    @property
    def nodes(self) -> list[NodeAddress]: ...


A = TypeVar("A", bound=Addresses)


class Backend(Protocol[A]):
    def addresses(self) -> A: ...

    def nodes(self, addresses: A, pki: Pki) -> Sequence[pulumi.Resource]: ...

    def extras(self, nodes: Sequence[pulumi.Resource]) -> Extras: ...


class BackendType(Protocol):
    """The adapter class a registry entry names: it reads the inputs, then is made with them."""

    def __call__(self, cfg: Any, inputs: HostInputs, child: ChildNamer) -> Backend[Any]: ...

    def read_inputs(self, cfg: Any, stack: str) -> HostInputs: ...


@dataclass(frozen=True)
class StaticAddresses:
    """Addresses fixed in config (SSH hosts): nothing to create."""

    nodes: list[NodeAddress]


class AddressComponent(Protocol):
    """A component that makes one node's address (an Elastic IP, a Service)."""

    @property
    def address(self) -> NodeAddress: ...


C = TypeVar("C", bound=AddressComponent)


@dataclass(frozen=True)
class AddressComponents(Generic[C]):
    """Addresses made as one component per node, in config order."""

    by_node: dict[str, C]

    @property
    def nodes(self) -> list[NodeAddress]:
        return [a.address for a in self.by_node.values()]
