"""The SSH backend's config: its section (`ssh:`) and its nodes (existing hosts)."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from components.config.base import ConfigModel
from components.config.fields import boolean, integer, matching, one_of, text
from components.config.nodes import Host, NodeSpec
from components.platforms import ARCH_OF, PLATFORMS, Arch, Platform

DevicePath = Annotated[str, matching(r"^/[\w./:@+-]+$", "an absolute device path like /dev/disk/by-id/...")]


class SshNodeSpec(NodeSpec):
    host: Host = Field(description="ssh: the address clients dial and Pulumi connects to; kubernetes (optional): "
                       "the host clients dial instead of the Service's address")
    ssh_port: Annotated[int, integer(1, 65535)] = Field(22, description="ssh: port of the host's sshd")
    ssh_user: Annotated[str, matching(r"^[a-z_][a-z0-9_-]{0,31}$", "a POSIX user name")] = Field(
        "root", description="ssh: user Pulumi connects as (installs need root)")
    ssh_host_key: Annotated[str, matching(
        r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+=*( .*)?$",
        "an ed25519 or ecdsa SSH public key like 'ssh-ed25519 AAAA...' (an ssh-rsa pin makes the command "
        "provider offer only SHA-1 ssh-rsa signatures, which current OpenSSH refuses)")] | None = Field(
        None, description="ssh: pin the host's ed25519 or ecdsa public key; unset, any host key is accepted")
    host_platform: Annotated[Platform, one_of(*PLATFORMS)] | None = Field(
        None, description="ssh, test hosts only: the host's real platform when it differs (RUN steps then "
        "run under QEMU user emulation)")
    data_device: DevicePath | None = Field(
        None, description="ssh: block device for the build state, formatted only when blank and mounted by UUID")

    @model_validator(mode="after")
    def _native_is_not_emulated(self) -> Self:
        if self.host_platform == self.platform:
            return self.settle(host_platform=None)
        return self

    @property
    def host_arch(self) -> Arch:
        return ARCH_OF[self.host_platform or self.platform]


SshNodeSpec.register("ssh")


class SshSpec(ConfigModel):
    """How Pulumi reaches existing hosts and what it installs there."""

    private_key_path: Annotated[str, text()] = Field(
        description="private key Pulumi connects with (read at run time, kept secret)")
    artifact_dir: Annotated[str, text()] = Field(
        "", description="directory with buildkit-<version>.linux-<arch>.tar.gz for hosts without internet "
        "(its sha256 is checked on the host); empty: hosts download the release")
    agent_socket: Annotated[str, matching(r"^/[^\0]*$", "an absolute path of a unix socket")] | None = Field(
        None, description="SSH agent the command provider dials instead of $SSH_AUTH_SOCK (it dials one whenever "
        "either is set, and aborts if it cannot); unset: $SSH_AUTH_SOCK, checked before anything is created")
    remove_state_on_destroy: Annotated[bool, boolean()] = Field(
        False, description="`pulumi destroy` also deletes the build cache")
