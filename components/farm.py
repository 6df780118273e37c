"""BuildkitFarm: the whole farm as one component (backend nodes, PKI, builder).

The flow, in dependency order: config -> addresses -> PKI -> nodes -> builder.
Another Pulumi Python program can embed a farm::

    from components import BuildkitFarm, FarmArgs, parse_config
    from components.backends import read_inputs
    cfg = parse_config(raw)
    farm = BuildkitFarm("ci", FarmArgs(config=cfg, inputs=read_inputs(cfg, "prod"), organization="acme ci"))
    pulumi.export("caCert", farm.ca_cert)
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.backends import make_backend
from components.backends.base import BuildCache, HostInputs
from components.builder.component import Builder, BuilderArgs
from components.builder.readiness import Readiness
from components.builder.scripts import BuilderNode, render_create_script
from components.builder.setup_action import setup_buildx_action
from components.config.farm import AnyFarmConfig
from components.pki import Pki, PkiArgs, ServerIdentity
from components.resources import child_namer


@dataclass(frozen=True)
class FarmArgs:
    config: AnyFarmConfig
    #: files and secrets the config points at (components.backends.read_inputs)
    inputs: HostInputs
    #: the certificates' subject organization
    organization: str
    #: the builder's name when builder.name is empty
    default_builder_name: str = "bkf"
    #: the one farm of a stack program: bare child names, adopting what a stack made before the farm
    #: was one component (see components/resources.py); embedded farms leave it off
    adopt_root_resources: bool = False


class BuildkitFarm(pulumi.ComponentResource):
    """A remote BuildKit farm with mTLS and persistent caches, and a ready buildx builder."""

    backend: str
    """The backend the nodes run on: aws, kubernetes or ssh."""
    platforms: list[str]
    """The platforms in node order, each once."""
    builder_name: pulumi.Output[str]
    """The buildx builder name (BUILDX_BUILDER / --builder)."""
    create_script: pulumi.Output[str]
    """The script that checks every node and creates the builder; CI can run it itself."""
    nodes: pulumi.Output[list[BuilderNode]]
    """Each node's name, platform, endpoint and TLS server name, in builder order."""
    ca_cert: pulumi.Output[str]
    """The farm CA certificate (PEM)."""
    client_cert: pulumi.Output[str]
    """The first client's certificate (PEM): the builder's."""
    client_key: pulumi.Output[str]
    """The first client's private key (PEM, secret)."""
    client_certs: dict[str, pulumi.Output[str]]
    """Certificate per client name."""
    client_keys: pulumi.Output[dict[str, str]]
    """Private key per client name (secret)."""
    cert_expiry: pulumi.Output[str]
    """The earliest expiry among all leaf certificates (RFC 3339): alert on it."""
    setup_buildx_action: pulumi.Output[dict[str, object]]
    """Inputs for docker/setup-buildx-action with the remote driver."""
    cache: BuildCache | None
    """aws with aws.cacheRepository: the ECR build-cache repository (cacheRef, cacheFlags); else None."""
    ci_wake_policy: pulumi.Output[str] | None
    """idleStop on AWS: the IAM policy CI needs to wake the farm (start and describe exactly its instances)."""
    ci_wake_token: pulumi.Output[str] | None
    """idleStop on kubernetes: the token CI scales the farm's StatefulSets with (get/patch their scale only)."""
    ci_wake_ca_cert: pulumi.Output[str] | None
    """idleStop on kubernetes: the cluster's CA, to check the API server CI dials."""

    def __init__(self, name: str, args: FarmArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("buildkit-farm:index:BuildkitFarm", name, None, opts)
        cfg = args.config
        child = child_namer(self, name, args.adopt_root_resources)
        backend = make_backend(cfg, args.inputs, child)
        # Addresses first: the server certs name them.
        addresses = backend.addresses()
        pki_name, pki_opts = child("pki")
        pki = Pki(pki_name, PkiArgs(
            spec=cfg.pki, organization=args.organization,
            servers=[ServerIdentity(a.name, a.dns_names, a.ip_addresses) for a in addresses.nodes]), pki_opts)
        nodes = backend.nodes(addresses, pki)
        # what only some backends have: waking stopped nodes (and CI's policy for it), a build cache
        extras = backend.extras(nodes)
        wake = extras.wake
        ready = None
        if (timeout := cfg.ready_timeout()) > 0:
            boot_logs = extras.boot_logs if extras.boot_logs is not None else pulumi.Output.from_input({})
            ready = boot_logs.apply(lambda logs: Readiness(timeout, logs))
        self.ci_wake_policy = extras.ci_wake_policy
        self.ci_wake_token = extras.ci_wake_token
        self.ci_wake_ca_cert = extras.ci_wake_ca_cert
        self.cache = extras.cache

        client = pki.clients[cfg.pki.clients[0]]
        builder_name = cfg.builder.name or args.default_builder_name
        node_info = pulumi.Output.all(*[pulumi.Output.all(a.endpoint, a.host) for a in addresses.nodes]).apply(
            lambda pairs: [BuilderNode(a.name, a.platform, ep, host)
                           for a, (ep, host) in zip(addresses.nodes, pairs, strict=True)])
        if cfg.builder.enabled:
            builder_res, builder_opts = child("builder", depends_on=list(nodes))
            builder = Builder(builder_res, BuilderArgs(
                builder_name=builder_name, nodes=node_info, ca_cert_pem=pki.ca_cert_pem,
                client_cert_pem=client.cert_pem, client_key_pem=client.private_key_pem,
                buildx_config_dir=cfg.builder.config_dir, buildx=cfg.builder.buildx, wake=wake, ready=ready,
                load_bound=cfg.builder.load_bound,
                probe_timeout_seconds=cfg.builder.probe_timeout_seconds, emulate=cfg.builder.emulate),
                builder_opts)
            self.builder_name = builder.builder_name
            self.create_script = builder.create_script
        else:
            # CI-only stacks: CI runs the create script itself.
            self.builder_name = pulumi.Output.from_input(builder_name)
            self.create_script = pulumi.Output.all(node_info, wake, ready).apply(
                lambda v: render_create_script(builder_name, v[0], cfg.builder.buildx, v[1], v[2],
                                               load_bound=cfg.builder.load_bound,
                                               probe_timeout=cfg.builder.probe_timeout_seconds,
                                               emulate=cfg.builder.emulate))

        self.backend = cfg.backend
        self.platforms = list(cfg.platforms())
        self.nodes = node_info
        self.ca_cert = pki.ca_cert_pem
        self.client_cert = client.cert_pem
        self.client_key = client.private_key_pem
        self.client_certs = {c: pki.clients[c].cert_pem for c in cfg.pki.clients}
        self.client_keys = pulumi.Output.secret(
            pulumi.Output.all(**{c: pki.clients[c].private_key_pem for c in cfg.pki.clients}))
        self.cert_expiry = pki.not_after
        self.setup_buildx_action = node_info.apply(setup_buildx_action)
        self.register_outputs({"builder_name": self.builder_name, "ca_cert": self.ca_cert,
                               "cert_expiry": self.cert_expiry})
