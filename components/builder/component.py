"""The multi-node buildx builder, created on the machine that runs `pulumi up`."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

from components.builder.placement import DEFAULT_C
from components.builder.readiness import Readiness
from components.builder.scripts import (
    DEFAULT_PROBE_TIMEOUT,
    ENV_CA,
    ENV_CERT,
    ENV_KEY,
    BuilderNode,
    render_create_script,
    render_delete_script,
)
from components.builder.wake import AnyWake


@dataclass(frozen=True)
class BuilderArgs:
    builder_name: str
    #: the nodes in config order (the first one gets builds without --platform)
    nodes: pulumi.Output[list[BuilderNode]]
    ca_cert_pem: pulumi.Input[str]
    client_cert_pem: pulumi.Input[str]
    #: secret
    client_key_pem: pulumi.Input[str]
    #: BUILDX_CONFIG directory (absolute); its certs/<builder>/ holds the 0600 cert files
    buildx_config_dir: str
    buildx: str = "docker buildx"
    #: idleStop: the script wakes stopped (aws) or scaled-down (kubernetes) nodes (None: off)
    wake: pulumi.Output[AnyWake] | None = None
    #: how long the preflight waits for booting nodes (None: one probe)
    ready: pulumi.Output[Readiness] | None = None
    #: c of the bounded-load placement with spare nodes (builder.loadBound)
    load_bound: float = DEFAULT_C
    #: seconds one node's probe may take (a node that drops packets costs this, not buildx's timeouts)
    probe_timeout_seconds: int = DEFAULT_PROBE_TIMEOUT
    #: platforms that may build under emulation when none of their own nodes passes (builder.emulate)
    emulate: tuple[str, ...] = ()


class Builder(pulumi.ComponentResource):
    """Runs the create script (remote driver, one node per platform, --append) and its preflight."""

    builder_name: pulumi.Output[str]
    """The buildx builder name (use with BUILDX_BUILDER or --builder)."""
    create_script: pulumi.Output[str]
    """The script that created the builder; CI can run the same one."""

    def __init__(self, name: str, args: BuilderArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("buildkit-farm:index:Builder", name, None, opts)
        wake: pulumi.Output[AnyWake | None] = args.wake if args.wake is not None else pulumi.Output.from_input(None)
        ready: pulumi.Output[Readiness | None] = (
            args.ready if args.ready is not None else pulumi.Output.from_input(None))
        self.create_script = pulumi.Output.all(args.nodes, wake, ready).apply(
            lambda v: render_create_script(args.builder_name, v[0], args.buildx, v[1], v[2],
                                           load_bound=args.load_bound,
                                           probe_timeout=args.probe_timeout_seconds, emulate=args.emulate))
        env: dict[str, pulumi.Input[str]] = {
            ENV_CA: args.ca_cert_pem,
            ENV_CERT: args.client_cert_pem,
            ENV_KEY: pulumi.Output.secret(args.client_key_pem),
        }
        if args.buildx_config_dir:
            # otherwise the script's default (or the caller's $BUILDX_CONFIG) applies
            env["BUILDX_CONFIG"] = args.buildx_config_dir
        cmd = command.local.Command(
            f"{name}-buildx",
            create=self.create_script,
            delete=render_delete_script(args.builder_name, args.buildx),
            # Secrets reach the script only through its environment.
            environment=env,
            interpreter=["/bin/bash", "-c"],
            # A new endpoint or certificate means a new builder, not an edit.
            triggers=[args.nodes.apply(lambda ns: [n.endpoint for n in ns]), args.ca_cert_pem,
                      args.client_cert_pem,
                      # a new BUILDX_CONFIG is a new builder: the replacement runs the old one's delete
                      # (with the old environment), so the old directory is cleaned up. Only when set,
                      # so stacks that never set it keep their triggers.
                      *([args.buildx_config_dir] if args.buildx_config_dir else [])],
            opts=pulumi.ResourceOptions(
                parent=self,
                # The old builder's delete (`buildx rm <name>`) must run before the
                # new one is created under the same name, not after.
                delete_before_replace=True,
            ),
        )
        self.builder_name = cmd.stdout.apply(lambda _: args.builder_name)
        self.register_outputs({"builder_name": self.builder_name, "create_script": self.create_script})
