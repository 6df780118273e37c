"""One node's settings: what bkf-node.sh acts on, rendered as its env file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from components.contracts.payload import render_env
from components.node.layout import (
    DEFAULT_BRIDGE_SUBNET,
    INSTALL_DIR,
    LOG_FILE,
    METADATA_CIDR,
    ROOTFUL_LAYOUT,
    DaemonLayout,
)
from components.versions import buildkit_release_url

#: where install gets the TLS files: the SSH command's stdin, SSM Parameter Store, or already in place
CertSource = Literal["stdin", "ssm", "files"]
#: how the daemon is kept running: systemd, the script's own supervisor, or whichever the host has
Init = Literal["systemd", "none", "auto"]


@dataclass(frozen=True)
class NodeSettings:
    """Everything bkf-node.sh needs, rendered into its env file.

    The script carries no defaults of its own: a setting missing from the env file
    stops it with a message naming the setting.
    """

    node_name: str
    platform: str
    buildkit_version: str
    #: sha256 of the tarball the node installs (the release's, or the artifact's)
    buildkit_sha256: str
    port: int
    cert_source: CertSource
    layout: DaemonLayout = ROOTFUL_LAYOUT
    artifact: str = ""
    data_device: str = ""
    data_fstab: bool = False
    ssm_prefix: str = ""
    aws_region: str = ""
    init: Init = "auto"
    allow_emulation: bool = False
    per_boot_hook: bool = False
    bridge_subnet: str = DEFAULT_BRIDGE_SUBNET
    #: the daemon's host arch when it differs from the platform's (emulated test hosts)
    host_arch: str = ""
    #: how long install waits for the data device (an EBS attachment may lag the boot)
    data_device_wait_s: int = 600
    #: how long a stopping daemon gets before it is killed
    stop_timeout_s: int = 30
    #: how long a restart or stop waits for builds in flight before stopping the daemon
    drain_timeout_s: int = 600
    #: the mTLS metrics port (config metrics.port); 0: no metrics endpoint, no debug socket
    metrics_port: int = 0
    #: config otel: where buildkitd exports traces over OTLP ('' : off) and how
    otel_endpoint: str = ""
    otel_protocol: str = "grpc"
    #: config otel.headers is set: the value comes with the TLS material (stdin or SSM), never from here
    otel_headers: bool = False

    @property
    def release_url(self) -> str:
        """Where a node without an artifact downloads the release tarball (checked against the sha256)."""
        arch = self.host_arch or self.platform.removeprefix("linux/")
        return buildkit_release_url(self.buildkit_version, arch)

    def env(self) -> dict[str, str]:
        return {
            "BKF_NODE_NAME": self.node_name,
            "BKF_PLATFORM": self.platform,
            "BKF_BUILDKIT_VERSION": self.buildkit_version,
            "BKF_BUILDKIT_SHA256": self.buildkit_sha256,
            "BKF_ARTIFACT": self.artifact,
            "BKF_RELEASE_URL": "" if self.artifact else self.release_url,
            "BKF_INSTALL_DIR": INSTALL_DIR,
            "BKF_CONFIG_DIR": self.layout.config_dir,
            "BKF_STATE_DIR": self.layout.state_dir,
            "BKF_RUN_DIR": self.layout.run_dir,
            "BKF_CNI_DIR": self.layout.cni_bin_dir,
            "BKF_LOG_FILE": LOG_FILE,
            "BKF_PORT": str(self.port),
            "BKF_INIT": self.init,
            "BKF_CERT_SOURCE": self.cert_source,
            "BKF_SSM_PREFIX": self.ssm_prefix,
            "BKF_AWS_REGION": self.aws_region,
            "BKF_DATA_DEVICE": self.data_device,
            "BKF_DATA_DEVICE_WAIT": str(self.data_device_wait_s),
            "BKF_DATA_FSTAB": "1" if self.data_fstab else "0",
            "BKF_BRIDGE_SUBNET": self.bridge_subnet,
            "BKF_METADATA_CIDR": METADATA_CIDR,
            "BKF_ALLOW_EMULATION": "1" if self.allow_emulation else "0",
            "BKF_PER_BOOT_HOOK": "1" if self.per_boot_hook else "0",
            "BKF_STOP_TIMEOUT": str(self.stop_timeout_s),
            "BKF_DRAIN_TIMEOUT": str(self.drain_timeout_s),
            "BKF_METRICS_PORT": str(self.metrics_port),
            "BKF_OTEL_ENDPOINT": self.otel_endpoint,
            "BKF_OTEL_PROTOCOL": self.otel_protocol,
            "BKF_OTEL_HEADERS": "1" if self.otel_headers else "0",
        }


def render_env_file(settings: NodeSettings) -> str:
    return render_env("buildkit-farm node settings (written by the bootstrap payload)", settings.env())
