"""buildkit-farm: a remote BuildKit farm and a ready multi-node buildx builder.

Thin on purpose: read and validate the stack config into typed objects (every
problem reported before any resource exists), build the components, export.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi

from components.backends import HostInputs, make_backend
from components.builder import Builder, BuilderArgs
from components.buildx import BuilderNode, render_create_script, setup_buildx_action
from components.config import TOP_LEVEL_KEYS, ConfigError, FarmConfig, parse_config
from components.node_bootstrap import artifact_name, sha256_file
from components.pki import Pki, PkiArgs, ServerIdentity


def read_raw_config() -> dict[str, Any]:
    """Every `buildkit-farm:*` key as plain values (objects and lists decoded)."""
    config = pulumi.Config()
    raw: dict[str, Any] = {}
    for key in TOP_LEVEL_KEYS:
        value = config.get(key)
        if value is None:
            continue
        try:
            raw[key] = json.loads(value)
        except ValueError:
            raw[key] = value
    return raw


def read_host_inputs(cfg: FarmConfig, stack: str) -> HostInputs:
    """Files the config points at: the SSH key and node artifacts. Problems are config errors."""
    if cfg.ssh is None:
        return HostInputs(stack=stack)
    problems: list[str] = []
    key_path = Path(cfg.ssh.private_key_path).expanduser()
    key: str | None = None
    try:
        key = key_path.read_text()
    except OSError as e:
        problems.append(f"ssh.privateKeyPath: {str(key_path)!r} cannot be read ({e.strerror})")
    artifacts: dict[str, tuple[str, str]] = {}
    if cfg.ssh.artifact_dir:
        base = Path(cfg.ssh.artifact_dir).expanduser().resolve()
        for n in cfg.nodes:
            path = base / artifact_name(cfg.buildkit.version, n.host_arch)
            if not path.is_file():
                problems.append(f"ssh.artifactDir: {str(base)!r} has no {path.name} for node {n.name}")
                continue
            artifacts[n.name] = (str(path), sha256_file(path))
    if problems:
        raise ConfigError(problems)
    return HostInputs(stack=stack, ssh_private_key=pulumi.Output.secret(key or ""),
                      artifacts=artifacts)


def main() -> None:
    stack = pulumi.get_stack()
    try:
        cfg = parse_config(read_raw_config(), aws_region=pulumi.Config("aws").get("region"))
        inputs = read_host_inputs(cfg, stack)
    except ConfigError as e:
        raise pulumi.RunError(str(e)) from None

    backend = make_backend(cfg, inputs)
    # Addresses first: the server certs name them.
    addresses = backend.addresses()
    pki = Pki("pki", PkiArgs(
        spec=cfg.pki, organization=f"buildkit-farm {pulumi.get_project()}/{stack}",
        servers=[ServerIdentity(a.name, a.dns_names, a.ip_addresses) for a in addresses]))
    nodes = backend.nodes(pki)

    client = pki.clients[cfg.pki.clients[0]]
    builder_name = cfg.builder.name or f"bkf-{stack}"
    node_info = pulumi.Output.all(*[pulumi.Output.all(a.endpoint, a.host) for a in addresses]).apply(
        lambda pairs: [BuilderNode(a.name, a.platform, ep, host)
                       for a, (ep, host) in zip(addresses, pairs, strict=True)])
    if cfg.builder.enabled:
        builder = Builder("builder", BuilderArgs(
            builder_name=builder_name, nodes=node_info, ca_cert_pem=pki.ca_cert_pem,
            client_cert_pem=client.cert_pem, client_key_pem=client.private_key_pem,
            buildx_config_dir=cfg.builder.config_dir, buildx=cfg.builder.buildx),
            opts=pulumi.ResourceOptions(depends_on=nodes))
        pulumi.export("builderName", builder.builder_name)
        pulumi.export("buildxCreateScript", builder.create_script)
    else:
        # CI-only stacks: CI runs buildxCreateScript itself.
        pulumi.export("builderName", builder_name)
        pulumi.export("buildxCreateScript", node_info.apply(
            lambda ns: render_create_script(builder_name, ns, cfg.builder.buildx)))

    pulumi.export("backend", cfg.backend)
    pulumi.export("platforms", cfg.platforms())
    pulumi.export("nodes", node_info.apply(lambda ns: [
        {"name": n.name, "platform": n.platform, "endpoint": n.endpoint, "serverName": n.server_name}
        for n in ns]))
    pulumi.export("endpoints", node_info.apply(lambda ns: [n.endpoint for n in ns]))
    pulumi.export("caCert", pki.ca_cert_pem)
    pulumi.export("clientCert", client.cert_pem)
    pulumi.export("clientKey", client.private_key_pem)
    pulumi.export("clientCerts", {c: pki.clients[c].cert_pem for c in cfg.pki.clients})
    pulumi.export("clientKeys", pulumi.Output.secret({c: pki.clients[c].private_key_pem
                                                      for c in cfg.pki.clients}))
    pulumi.export("certExpiry", pki.not_after)
    pulumi.export("setupBuildxAction", node_info.apply(setup_buildx_action))


main()
