"""What every backend provides, in two phases the types make explicit.

``addresses()`` makes what clients dial (it must exist before the server certs that
name it) and returns the backend's own typed handle; ``nodes(addresses, pki)``
takes that handle and the issued certs and starts the daemons. A backend cannot
make nodes before addresses: there is nothing to pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import pulumi

from components.config.farm import FarmBase
from components.config.nodes import NodeSpec
from components.node.address import NodeAddress
from components.node.buildkitd_toml import RegistryHost, registry_files, render_buildkitd_toml
from components.node.idle import DEFAULT_STOP_COMMAND, IdleStop
from components.node.layout import ROOTFUL_LAYOUT, DaemonLayout
from components.pki import Pki


@dataclass(frozen=True)
class HostInputs:
    """What was read from outside the stack config: files and secrets it points at."""

    stack: str
    #: ssh: private key (secret)
    ssh_private_key: pulumi.Input[str] | None = None
    #: ssh: node name -> (local artifact path, sha256)
    artifacts: dict[str, tuple[str, str]] = field(default_factory=dict)


class Addresses(Protocol):
    """A backend's handle on what it made in phase one."""

    @property
    def nodes(self) -> list[NodeAddress]: ...


A = TypeVar("A", bound=Addresses)


class Backend(Protocol[A]):
    def addresses(self) -> A: ...

    def nodes(self, addresses: A, pki: Pki) -> Sequence[pulumi.Resource]: ...


@dataclass(frozen=True)
class StaticAddresses:
    """Addresses fixed in config (SSH hosts): nothing to create."""

    nodes: list[NodeAddress]


def node_toml(cfg: FarmBase, node: NodeSpec, layout: DaemonLayout = ROOTFUL_LAYOUT) -> str:
    """The node's buildkitd.toml: the one rendering every backend uses."""
    return render_buildkitd_toml(
        platform=node.platform, port=cfg.buildkit.port, volume_gb=cfg.volume.size_gb,
        layout=layout, history_max_entries=cfg.buildkit.history_max_entries,
        history_max_age_days=cfg.buildkit.history_max_age_days, registries=node_registries(cfg))


def node_registries(cfg: FarmBase) -> tuple[RegistryHost, ...]:
    """`registries:` as the node renders it, in config order."""
    return tuple(RegistryHost(host=h, mirrors=r.mirrors, http=r.http, ca_pem=r.ca)
                 for h, r in cfg.registries.items())


def node_files(cfg: FarmBase, layout: DaemonLayout = ROOTFUL_LAYOUT) -> dict[str, str]:
    """Path -> content of the files the node's buildkitd.toml names besides TLS (registry CAs)."""
    return registry_files(layout, node_registries(cfg))


def node_idle_stop(cfg: FarmBase) -> IdleStop | None:
    """The node-side idle stop, or None when idleStop is off (the payload is then what it was)."""
    spec = cfg.idle_stop
    if not spec.enabled:
        return None
    return IdleStop(after_s=spec.after_minutes * 60, every_s=spec.check_seconds,
                    command=spec.command or DEFAULT_STOP_COMMAND)
