"""Backend adapters: typed config -> addresses (before certs) -> nodes (after certs).

Every backend is used in two steps so that the dependency order is explicit:
``addresses`` makes what clients dial (it must exist before the server cert that
names it); ``nodes`` gets the issued certs and starts the daemons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import pulumi

from components.aws_node import AwsNode, AwsNodeAddress, AwsNodeArgs, ssm_prefix
from components.buildkitd_config import ROOTFUL_LAYOUT, DaemonLayout, render_buildkitd_toml
from components.config import FarmConfig, NodeSpec
from components.node_address import NodeAddress, static_address
from components.node_bootstrap import INSTALL_DIR, NodeSettings, artifact_name
from components.pki import Pki
from components.ssh_node import SshNode, SshNodeArgs


@dataclass(frozen=True)
class HostInputs:
    """What __main__ read from outside the stack config (files, secrets)."""

    stack: str
    #: ssh: private key (secret)
    ssh_private_key: pulumi.Input[str] | None = None
    #: ssh: node name -> (local artifact path, sha256)
    artifacts: dict[str, tuple[str, str]] | None = None


class Backend(Protocol):
    def addresses(self) -> list[NodeAddress]: ...

    def nodes(self, pki: Pki) -> Sequence[pulumi.ComponentResource]: ...


def node_toml(cfg: FarmConfig, node: NodeSpec, layout: DaemonLayout = ROOTFUL_LAYOUT) -> str:
    """The node's buildkitd.toml: the one rendering every backend uses."""
    return render_buildkitd_toml(
        platform=node.platform, port=cfg.buildkit.port, volume_gb=cfg.volume.size_gb,
        layout=layout, history_max_entries=cfg.buildkit.history_max_entries,
        history_max_age_days=cfg.buildkit.history_max_age_days)


class AwsBackend:
    def __init__(self, cfg: FarmConfig, inputs: HostInputs) -> None:
        assert cfg.aws is not None
        self.cfg, self.aws, self.inputs = cfg, cfg.aws, inputs
        self._addr: dict[str, AwsNodeAddress] = {}

    def addresses(self) -> list[NodeAddress]:
        for n in self.cfg.nodes:
            self._addr[n.name] = AwsNodeAddress(f"{n.name}-address", n, self.aws, self.cfg.buildkit.port)
        return [a.address for a in self._addr.values()]

    def nodes(self, pki: Pki) -> list[AwsNode]:
        out = []
        for n in self.cfg.nodes:
            settings = NodeSettings(
                node_name=n.name, platform=n.platform, buildkit_version=self.cfg.buildkit.version,
                buildkit_sha256=self.cfg.buildkit.sha256[n.arch], port=self.cfg.buildkit.port,
                cert_source="ssm", ssm_prefix=ssm_prefix(self.inputs.stack, n.name),
                aws_region=self.aws.region, data_fstab=True, init="systemd", per_boot_hook=True)
            out.append(AwsNode(n.name, AwsNodeArgs(
                node=n, aws=self.aws, volume=self.cfg.volume, stack=self.inputs.stack,
                port=self.cfg.buildkit.port, allowed_cidrs=self.cfg.allowed_cidrs,
                address=self._addr[n.name], settings=settings, buildkitd_toml=node_toml(self.cfg, n),
                server_cert=pki.servers[n.name], ca_cert_pem=pki.ca_cert_pem)))
        return out


class SshBackend:
    def __init__(self, cfg: FarmConfig, inputs: HostInputs) -> None:
        assert cfg.ssh is not None
        self.cfg, self.ssh, self.inputs = cfg, cfg.ssh, inputs
        self._addr: dict[str, NodeAddress] = {}

    def addresses(self) -> list[NodeAddress]:
        for n in self.cfg.nodes:
            assert n.host is not None
            self._addr[n.name] = static_address(n.name, n.platform, self.cfg.buildkit.port, n.host,
                                                n.extra_sans)
        return list(self._addr.values())

    def nodes(self, pki: Pki) -> list[pulumi.ComponentResource]:
        assert self.inputs.ssh_private_key is not None
        artifacts = self.inputs.artifacts or {}
        out: list[pulumi.ComponentResource] = []
        for n in self.cfg.nodes:
            assert n.host is not None
            local = artifacts.get(n.name)
            arch = n.host_arch
            settings = NodeSettings(
                node_name=n.name, platform=n.platform, buildkit_version=self.cfg.buildkit.version,
                buildkit_sha256=local[1] if local else self.cfg.buildkit.sha256[arch],
                port=self.cfg.buildkit.port, cert_source="stdin",
                artifact=f"{INSTALL_DIR}/artifacts/{artifact_name(self.cfg.buildkit.version, arch)}"
                if local else "",
                allow_emulation=n.host_platform is not None, host_arch=arch,
                data_device=n.data_device or "")
            out.append(SshNode(n.name, SshNodeArgs(
                address=self._addr[n.name], ssh_host=n.host, ssh_port=n.ssh_port, ssh_user=n.ssh_user,
                ssh_host_key=n.ssh_host_key,
                ssh_private_key=self.inputs.ssh_private_key, settings=settings,
                buildkitd_toml=node_toml(self.cfg, n), server_cert=pki.servers[n.name],
                ca_cert_pem=pki.ca_cert_pem, artifact_path=local[0] if local else None,
                remove_state_on_destroy=self.ssh.remove_state_on_destroy)))
        return out


def make_backend(cfg: FarmConfig, inputs: HostInputs) -> Backend:
    if cfg.backend == "aws":
        return AwsBackend(cfg, inputs)
    if cfg.backend == "ssh":
        return SshBackend(cfg, inputs)
    from components.kubernetes_backend import KubernetesBackend

    return KubernetesBackend(cfg, inputs)
