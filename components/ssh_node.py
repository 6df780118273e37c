"""A build node on an existing host reached over SSH (on-prem servers, Mac minis, ARM boards).

Runs the SAME payload as EC2 user data (components/node_bootstrap.py), with the
certificate bundle on the remote command's stdin. `pulumi destroy` stops the
daemon and removes what was installed; the build cache stays unless asked.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

from components.node_address import NodeAddress
from components.node_bootstrap import (
    INSTALL_DIR,
    NodeSettings,
    render_cert_bundle,
    render_payload,
    render_uninstall,
)
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
    settings: NodeSettings
    buildkitd_toml: str
    server_cert: IssuedCert
    ca_cert_pem: pulumi.Input[str]
    #: local path of the buildkit tarball to copy over (hosts without internet), or None
    artifact_path: str | None = None
    remove_state_on_destroy: bool = False


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
            private_key=pulumi.Output.secret(args.ssh_private_key),
        )
        depends: list[pulumi.Resource] = []
        if args.artifact_path is not None:
            prepare = command.remote.Command(
                f"{name}-artifact-dir", connection=conn,
                create=f"mkdir -p '{INSTALL_DIR}/artifacts'",
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
            create=render_payload(args.settings, args.buildkitd_toml, "install"),
            delete=render_uninstall(args.remove_state_on_destroy),
            # key material travels on stdin, never in the command line or the payload;
            # the bundle is secret because the key in it is (tests check it)
            stdin=bundle,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )
        self.endpoint = args.address.endpoint
        self.install_log = install.stderr
        self.register_outputs({"endpoint": self.endpoint})
