"""The fields every node has, whatever its backend; each backend's node model extends it."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import Field

from components.config.base import ConfigModel
from components.config.fields import host, matching, one_of
from components.platforms import ARCH_OF, PLATFORMS, Arch, Platform

# A node name becomes a buildx node name, a Kubernetes object name and a DNS
# label, so it must satisfy all three.
NodeName = Annotated[str, matching(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$",
                                   "a node name (lower-case letters, digits and '-', starting with a letter, "
                                   "2-40 characters)")]
PlatformField = Annotated[Platform, one_of(*PLATFORMS)]
Host = Annotated[str, host()]


class NodeSpec(ConfigModel):
    """One build node. Backend node models add their own keys."""

    #: backend name -> the node keys only that backend takes (filled by each backend's model)
    backend_keys: ClassVar[dict[str, list[str]]] = {}

    name: NodeName = Field(description="unique node name; also the buildx node name and DNS label")
    platform: PlatformField = Field(description="the platform the node builds natively")
    extra_sans: tuple[Host, ...] = Field((), description="more DNS names or IPs for the server cert")

    @property
    def arch(self) -> Arch:
        return ARCH_OF[self.platform]

    @property
    def host_arch(self) -> Arch:
        """The arch of the machine the daemon runs on (differs only on emulated test hosts)."""
        return self.arch

    @classmethod
    def unknown_key_problem(cls, key: str, value: Any) -> str:
        owners = [b for b, keys in NodeSpec.backend_keys.items() if key in keys]
        if owners:
            return f"{value!r} is only allowed with backend {' or '.join(owners)}"
        return super().unknown_key_problem(key, value)

    @classmethod
    def register(cls, backend: str) -> None:
        """Record the keys this backend's node model adds, for the error on another backend."""
        NodeSpec.backend_keys[backend] = [k for k in cls.keys() if k not in NodeSpec.keys()]
