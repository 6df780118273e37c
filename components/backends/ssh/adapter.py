"""The SSH backend: existing hosts, whose addresses are in config; nodes are installed over SSH."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from components.backends.base import Extras, HostInputs, StaticAddresses
from components.backends.ssh.components import SshNode, SshNodeArgs
from components.backends.ssh.config import SshFarmConfig
from components.backends.ssh.inputs import read_host_inputs
from components.node.address import static_address
from components.node.layout import INSTALL_DIR
from components.node.payload import artifact_name
from components.node.render import HostSettings, render
from components.pki import Pki
from components.resources import ChildNamer


class SshBackend:
    """Existing hosts: their addresses are in config; nodes are installed over SSH."""

    def __init__(self, cfg: SshFarmConfig, inputs: HostInputs, child: ChildNamer) -> None:
        self.cfg, self.inputs, self.child = cfg, inputs, child

    @staticmethod
    def read_inputs(cfg: SshFarmConfig, stack: str) -> HostInputs:
        return read_host_inputs(cfg, stack)

    def addresses(self) -> StaticAddresses:
        return StaticAddresses([static_address(n.name, n.platform, self.cfg.buildkit.port, n.host, n.extra_sans)
                                for n in self.cfg.nodes])

    def nodes(self, addresses: StaticAddresses, pki: Pki) -> list[SshNode]:
        if self.inputs.ssh_private_key is None:
            raise ValueError("the ssh backend needs the private key (HostInputs.ssh_private_key)")
        out = []
        for n, address in zip(self.cfg.nodes, addresses.nodes, strict=True):
            local = self.inputs.artifacts.get(n.name)
            host = HostSettings(cert_source="stdin", allow_emulation=n.host_platform is not None,
                                host_arch=n.host_arch, data_device=n.data_device or "")
            if local:  # the copied tarball, checked against its own hash
                host["artifact"] = f"{INSTALL_DIR}/artifacts/{artifact_name(self.cfg.buildkit.version, n.host_arch)}"
                host["buildkit_sha256"] = local[1]
            bundle = render(self.cfg, n, **host)
            name, opts = self.child(n.name)
            out.append(SshNode(name, SshNodeArgs(
                address=address, ssh_host=n.host, ssh_port=n.ssh_port, ssh_user=n.ssh_user,
                ssh_host_key=n.ssh_host_key, ssh_private_key=self.inputs.ssh_private_key, bundle=bundle,
                server_cert=pki.servers[n.name], ca_cert_pem=pki.ca_cert_pem,
                artifact_path=local[0] if local else None,
                remove_state_on_destroy=self.cfg.ssh.remove_state_on_destroy,
                agent_socket=self.cfg.ssh.agent_socket), opts))
        return out

    def extras(self, nodes: Sequence[pulumi.Resource]) -> Extras:
        return Extras()
