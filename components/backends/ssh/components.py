"""The SSH backend's component: a build node on an existing host reached over SSH (on-prem servers,
Mac minis, ARM boards).

Runs the SAME payload as EC2 user data (components/node/payload.py), with the
certificate bundle on the remote command's stdin. `pulumi destroy` stops the
daemon and removes what was installed; the build cache stays unless asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

from components.backends.ssh.sftp import render_artifact_dir_script
from components.node.address import NodeAddress
from components.node.layout import INSTALL_DIR
from components.node.payload import render_cert_bundle
from components.node.render import NodeBundle
from components.pki import IssuedCert


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
    #: what the node runs from (components/node/render.py), shipped as the remote command
    bundle: NodeBundle
    server_cert: IssuedCert
    ca_cert_pem: pulumi.Input[str]
    #: local path of the buildkit tarball to copy over (hosts without internet), or None
    artifact_path: str | None = None
    remove_state_on_destroy: bool = False
    #: the SSH agent the provider dials (None: $SSH_AUTH_SOCK, if set)
    agent_socket: str | None = None


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
        settings = args.bundle.host_settings()
        depends: list[pulumi.Resource] = []
        if args.artifact_path is not None:
            prepare = command.remote.Command(
                f"{name}-artifact-dir", connection=conn,
                # makes the directory and checks the copy's SFTP subsystem (sftp.py)
                create=render_artifact_dir_script(f"{INSTALL_DIR}/artifacts", args.ssh_host),
                opts=pulumi.ResourceOptions(parent=self))
            copy = command.remote.CopyToRemote(
                f"{name}-artifact", connection=conn,
                source=pulumi.FileAsset(args.artifact_path),
                remote_path=settings.artifact,
                # a new file with the same path is a new artifact (its hash is in the settings)
                triggers=[settings.buildkit_sha256],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[prepare]))
            depends.append(copy)
        # config otel.headers travel with the key, as a secret of their own too (should the key
        # ever come in plain, the bundle stays secret because of them)
        bundle: pulumi.Output[str] = pulumi.Output.all(
            args.ca_cert_pem, args.server_cert.cert_pem, args.server_cert.private_key_pem,
            pulumi.Output.secret(args.bundle.otel_headers),
        ).apply(lambda v: render_cert_bundle(v[0], v[1], v[2], v[3]))
        install = command.remote.Command(
            f"{name}-buildkitd",
            connection=conn,
            create=args.bundle.payload("install"),
            delete=args.bundle.uninstall(args.remove_state_on_destroy),
            # key material travels on stdin, never in the command line or the payload;
            # the bundle is secret because the key in it is (tests check it)
            stdin=bundle,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )
        self.endpoint = args.address.endpoint
        self.install_log = install.stderr
        self.register_outputs({"endpoint": self.endpoint})
