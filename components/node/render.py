"""One node, rendered: every file it runs from, made from the config in one place.

``render`` turns the farm config and one node into a ``NodeBundle``: buildkitd.toml, the files
it names (registry CAs), the idle check and, for a node on a host of its own (EC2, SSH), the
settings bkf-node.sh reads. Each backend only ships the bundle as it must: the AWS backend as
gzipped user data, the SSH backend as its remote command, the Kubernetes backend as a ConfigMap
(a pod has no bkf-node.sh, so no settings). What differs between hosts (where the certificates
come from, the data device, emulation) is the backend's ``host`` part; everything the config
says is read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict, Unpack, cast
from urllib.parse import quote

from components.config.farm import FarmBase
from components.config.nodes import NodeSpec
from components.node.buildkitd_toml import RegistryHost, registry_files, render_buildkitd_toml
from components.node.idle import DEFAULT_STOP_COMMAND, IdleStop
from components.node.layout import ROOTFUL_LAYOUT, DaemonLayout
from components.node.payload import render_payload, render_uninstall
from components.node.settings import CertSource, Init, NodeSettings


class HostSettings(TypedDict, total=False):
    """What a backend knows about the host that the config does not (NodeSettings fields)."""

    cert_source: CertSource
    buildkit_sha256: str
    artifact: str
    data_device: str
    data_fstab: bool
    ssm_prefix: str
    aws_region: str
    init: Init
    allow_emulation: bool
    per_boot_hook: bool
    host_arch: str


@dataclass(frozen=True)
class NodeBundle:
    """Everything one node runs from."""

    buildkitd_toml: str
    #: path -> content: the files buildkitd.toml names besides TLS (registry CAs)
    files: Mapping[str, str] = field(default_factory=dict)
    #: idleStop (None: off)
    idle: IdleStop | None = None
    #: the env file bkf-node.sh acts on (None: a pod, which runs buildkitd itself)
    settings: NodeSettings | None = None
    #: buildkitd's environment (config otel); bkf-node.sh exports the same from its settings
    daemon_env: Mapping[str, str] = field(default_factory=dict)
    #: OTEL_EXPORTER_OTLP_HEADERS ('' : none), a SECRET: each backend ships it as it ships the TLS key,
    #: wrapped in pulumi.Output.secret; never in daemon_env, the settings or the payload
    otel_headers: str = field(default="", repr=False)

    def host_settings(self) -> NodeSettings:
        if self.settings is None:
            raise ValueError("this node runs no bkf-node.sh: render it with host settings")
        return self.settings

    def payload(self, action: str = "install", data_device: str | None = None) -> str:
        """The bootstrap payload (env, buildkitd.toml, files, script, unit, boot hook, idle check).

        ``data_device``: known only once the EC2 data volume exists.
        """
        settings = self.host_settings()
        if data_device is not None:
            settings = replace(settings, data_device=data_device)
        return render_payload(settings, self.buildkitd_toml, action, files=self.files, idle=self.idle)

    def uninstall(self, purge_state: bool) -> str:
        """The command that removes what the payload installed (the cache only with purge_state)."""
        extra_dirs = (self.host_settings().layout.registry_dir,) if self.files else ()
        return render_uninstall(purge_state, extra_dirs, idle=self.idle is not None)


def registries(cfg: FarmBase) -> tuple[RegistryHost, ...]:
    """`registries:` as the node renders it, in config order."""
    return tuple(RegistryHost(host=h, mirrors=r.mirrors, http=r.http, ca_pem=r.ca)
                 for h, r in cfg.registries.items())


def idle_stop(cfg: FarmBase) -> IdleStop | None:
    """The node-side idle stop, or None when idleStop is off (the payload is then what it was)."""
    spec = cfg.idle_stop
    if not spec.enabled:
        return None
    return IdleStop(after_s=spec.after_minutes * 60, every_s=spec.check_seconds,
                    command=spec.command or DEFAULT_STOP_COMMAND)


def buildkitd_toml(cfg: FarmBase, node: NodeSpec, layout: DaemonLayout = ROOTFUL_LAYOUT) -> str:
    return render_buildkitd_toml(
        platform=node.platform, port=cfg.buildkit.port, volume_gb=cfg.volume.size_gb,
        layout=layout, history_max_entries=cfg.buildkit.history_max_entries,
        history_max_age_days=cfg.buildkit.history_max_age_days, registries=registries(cfg),
        debug_socket=cfg.metrics.enabled)


def daemon_env(cfg: FarmBase, node: NodeSpec) -> dict[str, str]:
    """The OTLP variables buildkitd's exporter reads (util/tracing/detect/otlp.go); none without otel.endpoint."""
    if not cfg.otel.endpoint:
        return {}
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": cfg.otel.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": cfg.otel.protocol,
            "OTEL_RESOURCE_ATTRIBUTES": f"bkf.node={node.name},bkf.platform={node.platform}"}


def otlp_headers(cfg: FarmBase) -> str:
    """config otel.headers as OTEL_EXPORTER_OTLP_HEADERS: name=value pairs joined by commas, each value
    percent-encoded (the Go exporter splits on ',' and '=' and decodes values with url.PathUnescape)."""
    return ",".join(f"{name}={quote(value, safe='')}" for name, value in cfg.otel.headers.items())


def render(cfg: FarmBase, node: NodeSpec, layout: DaemonLayout = ROOTFUL_LAYOUT,
           **host: Unpack[HostSettings]) -> NodeBundle:
    """The node's bundle; with ``host`` (a node on a host of its own) also its bkf-node.sh settings."""
    settings = None
    if host:
        settings = replace(NodeSettings(
            node_name=node.name, platform=node.platform, buildkit_version=cfg.buildkit.version,
            buildkit_sha256=cfg.buildkit.sha256_of(node.host_arch), port=cfg.buildkit.port,
            cert_source="files", layout=layout, drain_timeout_s=cfg.buildkit.drain_timeout_seconds,
            metrics_port=cfg.metrics.port, otel_endpoint=cfg.otel.endpoint, otel_protocol=cfg.otel.protocol,
            otel_headers=bool(cfg.otel.headers)),
            **cast(dict[str, Any], host))
    return NodeBundle(buildkitd_toml=buildkitd_toml(cfg, node, layout), files=registry_files(layout, registries(cfg)),
                      idle=idle_stop(cfg), settings=settings, daemon_env=daemon_env(cfg, node),
                      otel_headers=otlp_headers(cfg))
