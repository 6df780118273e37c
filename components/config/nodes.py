"""The fields every node has, whatever its backend; each backend's node model extends it."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from components.config.base import ConfigModel
from components.config.fields import Host, matching
from components.platforms import ARCH_OF, Arch, Platform

# A node name becomes a buildx node name, a Kubernetes object name and a DNS
# label, so it must satisfy all three.
NodeName = Annotated[str, matching(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$",
                                   "a node name (lower-case letters, digits and '-', starting with a letter, "
                                   "2-40 characters)")]


class NodeSpec(ConfigModel):
    """One build node. Backend node models add their own keys."""

    name: NodeName = Field(description="unique node name; also the buildx node name and DNS label")
    platform: Platform = Field(description="the platform the node builds natively")
    extra_sans: tuple[Host, ...] = Field((), description="more DNS names or IPs for the server cert")

    @property
    def arch(self) -> Arch:
        return ARCH_OF[self.platform]

    @property
    def host_arch(self) -> Arch:
        """The arch of the machine the daemon runs on (differs only on emulated test hosts)."""
        return self.arch
