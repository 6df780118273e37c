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

from components.buildkitd_config import ROOTFUL_LAYOUT, DaemonLayout

SCRIPT_PATH = Path(__file__).resolve().parent.parent / "node" / "bkf-node.sh"
INSTALL_DIR = "/opt/buildkit-farm"
ENV_FILE = "/etc/buildkit-farm/node.env"
#: EC2 user data is limited to 16 KiB before base64.
USER_DATA_LIMIT = 16 * 1024

_ENV_VALUE_RE = re.compile(r"^[A-Za-z0-9_./:@+=,-]*$")


def node_script() -> str:
    """The one node bootstrap script, as shipped in node/bkf-node.sh."""
    return SCRIPT_PATH.read_text()


@dataclass(frozen=True)
class NodeSettings:
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
    bridge_subnet: str = "10.213.0.0/16"

    def env(self) -> dict[str, str]:
        return {
            "BKF_NODE_NAME": self.node_name,
            "BKF_PLATFORM": self.platform,
            "BKF_BUILDKIT_VERSION": self.buildkit_version,
            "BKF_BUILDKIT_SHA256": self.buildkit_sha256,
            "BKF_ARTIFACT": self.artifact,
            "BKF_INSTALL_DIR": INSTALL_DIR,
            "BKF_CONFIG_DIR": self.layout.config_dir,
            "BKF_STATE_DIR": self.layout.state_dir,
            "BKF_RUN_DIR": self.layout.run_dir,
            "BKF_PORT": str(self.port),
            "BKF_INIT": self.init,
            "BKF_CERT_SOURCE": self.cert_source,
            "BKF_SSM_PREFIX": self.ssm_prefix,
            "BKF_AWS_REGION": self.aws_region,
            "BKF_DATA_DEVICE": self.data_device,
            "BKF_DATA_FSTAB": "1" if self.data_fstab else "0",
            "BKF_BRIDGE_SUBNET": self.bridge_subnet,
            "BKF_ALLOW_EMULATION": "1" if self.allow_emulation else "0",
            "BKF_PER_BOOT_HOOK": "1" if self.per_boot_hook else "0",
        }


def render_env_file(settings: NodeSettings) -> str:
    lines = ["# buildkit-farm node settings (written by the bootstrap payload)"]
    for key, value in settings.env().items():
        if not _ENV_VALUE_RE.match(value):
            raise ValueError(f"{key}={value!r} has characters that are unsafe in an env file")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


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
