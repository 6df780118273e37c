"""The SSH backend's config: its section (`ssh:`) and its nodes (existing hosts)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo

from components.config.base import ConfigModel
from components.config.farm import BACKEND_DOC, FarmBase, Nodes
from components.config.fields import Bool, Host, Int, Text, integer, matching
from components.config.nodes import NodeSpec
from components.platforms import ARCH_OF, Arch, Platform

DevicePath = Annotated[str, matching(r"^/[\w./:@+-]+$", "an absolute device path like /dev/disk/by-id/...")]


def _emulated_only(host_platform: Platform | None, info: ValidationInfo) -> Platform | None:
    """The host's own platform counts only when it differs from the node's (then RUN steps are emulated)."""
    return None if host_platform == info.data.get("platform") else host_platform


class SshNodeSpec(NodeSpec):
    host: Host = Field(description="ssh: the address clients dial and Pulumi connects to; kubernetes (optional): "
                       "the host clients dial instead of the Service's address")
    ssh_port: Annotated[Int, integer(1, 65535)] = Field(22, description="ssh: port of the host's sshd")
    ssh_user: Annotated[str, matching(r"^[a-z_][a-z0-9_-]{0,31}$", "a POSIX user name")] = Field(
        "root", description="ssh: user Pulumi connects as (installs need root)")
    ssh_host_key: Annotated[str, matching(
        r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+=*( .*)?$",
        "an ed25519 or ecdsa SSH public key like 'ssh-ed25519 AAAA...' (an ssh-rsa pin makes the command "
        "provider offer only SHA-1 ssh-rsa signatures, which current OpenSSH refuses)")] | None = Field(
        None, description="ssh: pin the host's ed25519 or ecdsa public key; unset, any host key is accepted")
    host_platform: Annotated[Platform | None, AfterValidator(_emulated_only)] = Field(
        None, description="ssh, test hosts only: the host's real platform when it differs (RUN steps then "
        "run under QEMU user emulation)")
    data_device: DevicePath | None = Field(
        None, description="ssh: block device for the build state, formatted only when blank and mounted by UUID")

    @property
    def host_arch(self) -> Arch:
        return ARCH_OF[self.host_platform or self.platform]


class SshSpec(ConfigModel):
    """How Pulumi reaches existing hosts and what it installs there."""

    private_key_path: Text = Field(description="private key Pulumi connects with (read at run time, kept secret)")
    artifact_dir: Text = Field(
        "", description="directory with buildkit-<version>.linux-<arch>.tar.gz for hosts without internet "
        "(its sha256 is checked on the host); empty: hosts download the release")
    agent_socket: Annotated[str, matching(r"^/[^\0]*$", "an absolute path of a unix socket")] | None = Field(
        None, description="SSH agent the command provider dials instead of $SSH_AUTH_SOCK (it dials one whenever "
        "either is set, and aborts if it cannot); unset: $SSH_AUTH_SOCK, checked before anything is created")
    remove_state_on_destroy: Bool = Field(False, description="`pulumi destroy` also deletes the build cache")


class SshFarmConfig(FarmBase):
    backend: Literal["ssh"] = Field("ssh", description=BACKEND_DOC)
    nodes: Nodes[SshNodeSpec] = ()
    ssh: SshSpec = Field({}, validate_default=True, description="how Pulumi reaches the hosts")
