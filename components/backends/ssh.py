"""A build node on an existing host reached over SSH (on-prem servers, Mac minis, ARM boards).

Runs the SAME payload as EC2 user data (components/node/payload.py), with the
certificate bundle on the remote command's stdin. `pulumi destroy` stops the
daemon and removes what was installed; the build cache stays unless asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_command as command

from components.backends.base import HostInputs, StaticAddresses, node_files, node_idle_stop, node_toml
from components.backends.ssh_sftp import render_artifact_dir_script
from components.config.farm import SshFarmConfig
from components.node.address import NodeAddress, static_address
from components.node.idle import IdleStop
from components.node.layout import INSTALL_DIR, ROOTFUL_LAYOUT
from components.node.payload import artifact_name, render_cert_bundle, render_payload, render_uninstall
from components.node.settings import NodeSettings
from components.pki import IssuedCert, Pki
from components.resources import ChildNamer


@dataclass(frozen=True)
class SshNodeArgs:
    address: NodeAddress
    ssh_host: str
    ssh_port: int
    ssh_user: str
    #: pin the host's public key (None: any host key is accepted)
    ssh_host_key: str | None
    #: secret: the private key Pulumi connects with
    ssh_private_key: pulumi.Input[str]
    settings: NodeSettings
    buildkitd_toml: str
    server_cert: IssuedCert
    ca_cert_pem: pulumi.Input[str]
    #: local path of the buildkit tarball to copy over (hosts without internet), or None
    artifact_path: str | None = None
    remove_state_on_destroy: bool = False
    #: the SSH agent the provider dials (None: $SSH_AUTH_SOCK, if set)
    agent_socket: str | None = None
    #: path -> content: other files buildkitd.toml names (registry CAs)
    files: Mapping[str, str] = field(default_factory=dict)
    #: idleStop (None: off)
    idle: IdleStop | None = None


class SshNode(pulumi.ComponentResource):
    """buildkitd on an existing host, installed and kept current over SSH."""

    endpoint: pulumi.Output[str]
    """tcp://host:port clients dial."""
    install_log: pulumi.Output[str]
    """What the bootstrap printed on its last run (no secrets: it never prints them)."""

    def __init__(self, name: str, args: SshNodeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("buildkit-farm:index:SshNode", name, None, opts)
        conn = command.remote.ConnectionArgs(
            host=args.ssh_host, port=args.ssh_port, user=args.ssh_user, host_key=args.ssh_host_key,
            private_key=pulumi.Output.secret(args.ssh_private_key), agent_socket_path=args.agent_socket,
        )
        depends: list[pulumi.Resource] = []
        if args.artifact_path is not None:
            prepare = command.remote.Command(
                f"{name}-artifact-dir", connection=conn,
                # makes the directory and checks the copy's SFTP subsystem (ssh_sftp)
                create=render_artifact_dir_script(f"{INSTALL_DIR}/artifacts", args.ssh_host),
                opts=pulumi.ResourceOptions(parent=self))
            copy = command.remote.CopyToRemote(
                f"{name}-artifact", connection=conn,
                source=pulumi.FileAsset(args.artifact_path),
                remote_path=args.settings.artifact,
                # a new file with the same path is a new artifact (its hash is in the settings)
                triggers=[args.settings.buildkit_sha256],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[prepare]))
            depends.append(copy)
        bundle: pulumi.Output[str] = pulumi.Output.all(
            args.ca_cert_pem, args.server_cert.cert_pem, args.server_cert.private_key_pem,
        ).apply(lambda v: render_cert_bundle(v[0], v[1], v[2]))
        install = command.remote.Command(
            f"{name}-buildkitd",
            connection=conn,
            create=render_payload(args.settings, args.buildkitd_toml, "install", files=args.files, idle=args.idle),
            delete=render_uninstall(args.remove_state_on_destroy,
                                    (ROOTFUL_LAYOUT.registry_dir,) if args.files else (), idle=args.idle is not None),
            # key material travels on stdin, never in the command line or the payload;
            # the bundle is secret because the key in it is (tests check it)
            stdin=bundle,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )
        self.endpoint = args.address.endpoint
        self.install_log = install.stderr
        self.register_outputs({"endpoint": self.endpoint})


class SshBackend:
    """Existing hosts: their addresses are in config; nodes are installed over SSH."""

    def __init__(self, cfg: SshFarmConfig, inputs: HostInputs, child: ChildNamer) -> None:
        self.cfg, self.inputs, self.child = cfg, inputs, child

    def addresses(self) -> StaticAddresses:
        return StaticAddresses([static_address(n.name, n.platform, self.cfg.buildkit.port, n.host, n.extra_sans)
                                for n in self.cfg.nodes])

    def nodes(self, addresses: StaticAddresses, pki: Pki) -> list[SshNode]:
        if self.inputs.ssh_private_key is None:
            raise ValueError("the ssh backend needs the private key (HostInputs.ssh_private_key)")
        out = []
        for n, address in zip(self.cfg.nodes, addresses.nodes, strict=True):
            local = self.inputs.artifacts.get(n.name)
            arch = n.host_arch
            settings = NodeSettings(
                node_name=n.name, platform=n.platform, buildkit_version=self.cfg.buildkit.version,
                buildkit_sha256=local[1] if local else self.cfg.buildkit.sha256_of(arch),
                port=self.cfg.buildkit.port, cert_source="stdin",
                artifact=f"{INSTALL_DIR}/artifacts/{artifact_name(self.cfg.buildkit.version, arch)}"
                if local else "",
                allow_emulation=n.host_platform is not None, host_arch=arch,
                data_device=n.data_device or "",
                drain_timeout_s=self.cfg.buildkit.drain_timeout_seconds)
            name, opts = self.child(n.name)
            out.append(SshNode(name, SshNodeArgs(
                address=address, ssh_host=n.host, ssh_port=n.ssh_port, ssh_user=n.ssh_user,
                ssh_host_key=n.ssh_host_key,
                ssh_private_key=self.inputs.ssh_private_key, settings=settings,
                buildkitd_toml=node_toml(self.cfg, n), server_cert=pki.servers[n.name],
                ca_cert_pem=pki.ca_cert_pem, artifact_path=local[0] if local else None,
                remove_state_on_destroy=self.cfg.ssh.remove_state_on_destroy,
                agent_socket=self.cfg.ssh.agent_socket, files=node_files(self.cfg),
                idle=node_idle_stop(self.cfg)), opts))
        return out
