"""Where a node keeps everything: the one definition of its paths and network defaults.

Python renders all of it into the node's env file (components/node/settings.py);
bkf-node.sh has no defaults of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

#: install prefix on hosts we manage (the script, binaries, rendered unit and hook)
INSTALL_DIR = "/opt/buildkit-farm"
#: the node's settings, written by the payload, read by bkf-node.sh
ENV_FILE = "/etc/buildkit-farm/node.env"
LOG_FILE = "/var/log/buildkit-farm/buildkitd.log"
#: rendered files the script installs where their init system looks for them
UNIT_FILE = f"{INSTALL_DIR}/buildkitd.service"
PER_BOOT_HOOK_FILE = f"{INSTALL_DIR}/per-boot-hook.sh"
#: the metrics endpoint (components/node/metrics_proxy.py, shipped whole) and its unit (metrics.port only)
METRICS_PROXY_FILE = f"{INSTALL_DIR}/bkf-metrics.py"
METRICS_UNIT_FILE = f"{INSTALL_DIR}/bkf-metrics.service"
#: the cloud metadata service RUN steps must never reach
METADATA_CIDR = "169.254.169.254/32"
#: Bridge subnet for RUN steps; must not collide with the networks nodes live in.
DEFAULT_BRIDGE_SUBNET = "10.213.0.0/16"


@dataclass(frozen=True)
class DaemonLayout:
    """Where a daemon keeps its state, config, certs and sockets."""

    state_dir: str
    config_dir: str
    run_dir: str
    #: rootless daemons (Kubernetes) cannot create bridge networks
    rootless: bool = False
    #: where bkf-node.sh links the CNI plugins (rootful only)
    cni_bin_dir: str = f"{INSTALL_DIR}/cni/bin"

    @property
    def tls_dir(self) -> str:
        return f"{self.config_dir}/tls"

    @property
    def ca_path(self) -> str:
        return f"{self.tls_dir}/ca.pem"

    @property
    def cert_path(self) -> str:
        return f"{self.tls_dir}/cert.pem"

    @property
    def key_path(self) -> str:
        return f"{self.tls_dir}/key.pem"

    @property
    def socket_path(self) -> str:
        return f"{self.run_dir}/buildkitd.sock"

    @property
    def debug_socket_path(self) -> str:
        """buildkitd's debugAddress (pprof, /metrics, cache dumps): a socket only its owner may open."""
        return f"{self.run_dir}/debug.sock"

    @property
    def registry_dir(self) -> str:
        """The CA files of the registries the node trusts (``[registry."<host>"] ca``)."""
        return f"{self.config_dir}/registry"

    @property
    def config_path(self) -> str:
        return f"{self.config_dir}/buildkitd.toml"


#: Hosts we manage (AWS instances, SSH hosts): rootful buildkitd.
ROOTFUL_LAYOUT = DaemonLayout(state_dir="/var/lib/buildkit", config_dir="/etc/buildkit",
                              run_dir="/run/buildkit")
#: The rootless image's conventional paths (Kubernetes).
ROOTLESS_LAYOUT = DaemonLayout(state_dir="/home/user/.local/share/buildkit",
                               config_dir="/home/user/.config/buildkit",
                               run_dir="/run/user/1000/buildkit", rootless=True)
