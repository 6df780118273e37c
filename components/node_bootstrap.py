"""Wrap node/bkf-node.sh with one node's settings (pure functions, no Pulumi).

The same payload is EC2 user data (certs fetched from SSM Parameter Store) and
the `create` of the SSH backend's remote command (certs on stdin). It writes the
node's settings and buildkitd.toml, installs the script and runs one of its
subcommands. It never contains key material.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from components.buildkitd_config import DEFAULT_BRIDGE_SUBNET, ROOTFUL_LAYOUT, DaemonLayout
from components.versions import buildkit_release_url

SCRIPT_PATH = Path(__file__).resolve().parent.parent / "node" / "bkf-node.sh"
INSTALL_DIR = "/opt/buildkit-farm"
ENV_FILE = "/etc/buildkit-farm/node.env"
LOG_FILE = "/var/log/buildkit-farm/buildkitd.log"
#: rendered files the script installs where their init system looks for them
UNIT_FILE = f"{INSTALL_DIR}/buildkitd.service"
PER_BOOT_HOOK_FILE = f"{INSTALL_DIR}/per-boot-hook.sh"
#: the cloud metadata service RUN steps must never reach
METADATA_CIDR = "169.254.169.254/32"
#: EC2 user data is limited to 16 KiB before base64.
USER_DATA_LIMIT = 16 * 1024

_ENV_VALUE_RE = re.compile(r"^[A-Za-z0-9_./:@+=,-]*$")


def node_script() -> str:
    """The one node bootstrap script, as shipped in node/bkf-node.sh."""
    return SCRIPT_PATH.read_text()


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
    cert_source: str  # "stdin" | "ssm" | "files"
    layout: DaemonLayout = ROOTFUL_LAYOUT
    artifact: str = ""
    data_device: str = ""
    data_fstab: bool = False
    ssm_prefix: str = ""
    aws_region: str = ""
    init: str = "auto"
    allow_emulation: bool = False
    per_boot_hook: bool = False
    bridge_subnet: str = DEFAULT_BRIDGE_SUBNET
    #: the daemon's host arch when it differs from the platform's (emulated test hosts)
    host_arch: str = ""
    #: how long install waits for the data device (an EBS attachment may lag the boot)
    data_device_wait_s: int = 600
    #: how long a stopping daemon gets before it is killed
    stop_timeout_s: int = 30

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
        }


def render_env_file(settings: NodeSettings) -> str:
    lines = ["# buildkit-farm node settings (written by the bootstrap payload)"]
    for key, value in settings.env().items():
        if not _ENV_VALUE_RE.match(value):
            raise ValueError(f"{key}={value!r} has characters that are unsafe in an env file")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def render_systemd_unit(settings: NodeSettings) -> str:
    """buildkitd.service: the script's `run` starts the daemon, so its argv lives in one place."""
    return f"""# Rendered by buildkit-farm; changes are overwritten.
[Unit]
Description=BuildKit daemon (buildkit-farm node {settings.node_name})
Wants=network-online.target
After=network-online.target local-fs.target
RequiresMountsFor={settings.layout.state_dir}

[Service]
ExecStart={INSTALL_DIR}/bkf-node.sh run
Restart=always
RestartSec=2
Delegate=yes
KillMode=mixed
TimeoutStopSec={settings.stop_timeout_s}
LimitNOFILE=1048576

[Install]
WantedBy=multi-user.target
"""


def render_per_boot_hook() -> str:
    """cloud-init per-boot script: re-run the *current* user data on every boot.

    EC2 runs user data once per instance; with this hook a changed payload applied by
    a stop/start takes effect without replacing the instance. Metadata is read with
    IMDSv2 (session token), the only mode the instances allow.
    """
    imds = "http://" + METADATA_CIDR.split("/")[0]
    return f"""#!/bin/bash
# Rendered by buildkit-farm: re-runs the current user data on every boot.
set -euo pipefail
t=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' {imds}/latest/api/token)
curl -fsS -H "X-aws-ec2-metadata-token: $t" {imds}/latest/user-data -o /run/bkf-user-data
# buildkit-farm sends its user data gzipped
if gzip -t /run/bkf-user-data 2>/dev/null; then
  gunzip -c /run/bkf-user-data >/run/bkf-user-data.sh
else
  cp /run/bkf-user-data /run/bkf-user-data.sh
fi
exec bash /run/bkf-user-data.sh
"""


def _heredoc(path: str, content: str, mode: str) -> str:
    marker = "BKF_EOF_" + hashlib.sha256(content.encode()).hexdigest()[:12]
    if marker in content:  # pragma: no cover - astronomically unlikely
        raise ValueError("heredoc marker collides with content")
    return (f"cat > '{path}.new' <<'{marker}'\n{content.rstrip(chr(10))}\n{marker}\n"
            f"chmod {mode} '{path}.new' && mv -f '{path}.new' '{path}'\n")


def render_payload(settings: NodeSettings, buildkitd_toml: str, action: str = "install",
                   script: str | None = None) -> str:
    """A self-contained bash program that sets up the node and runs ``bkf-node.sh <action>``."""
    if action not in ("install", "uninstall", "uninstall --purge-state", "certs"):
        raise ValueError(f"unknown action {action!r}")
    script = node_script() if script is None else script
    layout = settings.layout
    parts = [
        "#!/bin/bash\n",
        f"# buildkit-farm node {settings.node_name} ({settings.platform}): bootstrap payload.\n",
        "# No secrets here: certificates come from stdin or SSM Parameter Store.\n",
        "set -euo pipefail\numask 022\n",
        f"mkdir -p '{INSTALL_DIR}' '{Path(ENV_FILE).parent}' '{layout.config_dir}'\n",
        _heredoc(ENV_FILE, render_env_file(settings), "0644"),
        _heredoc(layout.config_path, buildkitd_toml, "0644"),
        _heredoc(f"{INSTALL_DIR}/bkf-node.sh", script, "0755"),
        _heredoc(UNIT_FILE, render_systemd_unit(settings), "0644"),
    ]
    if settings.per_boot_hook:
        parts.append(_heredoc(PER_BOOT_HOOK_FILE, render_per_boot_hook(), "0755"))
    parts += [
        f"exec '{INSTALL_DIR}/bkf-node.sh' {action}\n",
    ]
    return "".join(parts)


def render_uninstall(purge_state: bool) -> str:
    """The delete command: run the installed script's uninstall (no-op if absent)."""
    flag = " --purge-state" if purge_state else ""
    return (f"if [ -x '{INSTALL_DIR}/bkf-node.sh' ]; then "
            f"'{INSTALL_DIR}/bkf-node.sh' uninstall{flag}; else echo 'nothing installed'; fi")


def render_cert_bundle(ca_pem: str, cert_pem: str, key_pem: str) -> str:
    """The stdin bundle bkf-node.sh splits into ca.pem, cert.pem and key.pem."""
    def block(name: str, pem: str) -> str:
        return f"### {name}\n{pem.strip()}\n"
    return block("ca.pem", ca_pem) + block("cert.pem", cert_pem) + block("key.pem", key_pem)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def artifact_name(version: str, arch: str) -> str:
    return f"buildkit-{version}.linux-{arch}.tar.gz"
