"""Wrap bkf-node.sh (beside this module) with one node's settings (pure functions, no Pulumi).

The same payload is EC2 user data (certs fetched from SSM Parameter Store) and
the `create` of the SSH backend's remote command (certs on stdin). It writes the
node's settings and buildkitd.toml, installs the script and runs one of its
subcommands. It never contains key material.
"""

from __future__ import annotations

import ast
import hashlib
import posixpath
from collections.abc import Mapping
from pathlib import Path

from components.contracts.payload import heredoc
from components.node.idle import IDLE_MARKER, IDLE_SCRIPT, IdleStop, render_idle_script, render_idle_units
from components.node.layout import (
    ENV_FILE,
    INSTALL_DIR,
    METADATA_CIDR,
    METRICS_PROXY_FILE,
    METRICS_UNIT_FILE,
    PER_BOOT_HOOK_FILE,
    UNIT_FILE,
)
from components.node.settings import NodeSettings, render_env_file

SCRIPT_PATH = Path(__file__).resolve().parent / "bkf-node.sh"
#: shipped whole as METRICS_PROXY_FILE when metrics.port is set (standard library only)
METRICS_PROXY_PATH = Path(__file__).resolve().parent / "metrics_proxy.py"
#: EC2 user data is limited to 16 KiB before base64.
USER_DATA_LIMIT = 16 * 1024


def node_script() -> str:
    """The one node bootstrap script, as the node gets it: without its comment lines (shellcheck's
    directives stay: the payload is checked too).

    The comments are for a reader of the repository (and shellcheck), not for the node, and the
    user data is near EC2's 16 KiB with idleStop, metrics and otel on. Safe because the script has
    no heredocs and no quoted text spanning lines that starts a line with '#' (a unit test runs
    the shipped script's `bash -n` and compares its statements with the repository's)."""
    first, *rest = SCRIPT_PATH.read_text().splitlines(keepends=True)
    return first + "".join(line for line in rest
                           if not line.lstrip().startswith("#") or line.lstrip().startswith("# shellcheck "))


def render_systemd_unit(settings: NodeSettings) -> str:
    """buildkitd.service: the script's `run` starts the daemon, so its argv lives in one place."""
    return f"""# Rendered by buildkit-farm; changes are overwritten.
[Unit]
Description=BuildKit daemon (buildkit-farm node {settings.node_name})
Wants=network-online.target
After=network-online.target local-fs.target
RequiresMountsFor={settings.layout.state_dir}
# never give up restarting: a node that stopped trying is a dead node in the builder
StartLimitIntervalSec=0

[Service]
ExecStart={INSTALL_DIR}/bkf-node.sh run
Restart=always
# back about a second after a crash or kill -9, so a CI job's retry finds it answering
RestartSec=1
Delegate=yes
KillMode=mixed
TimeoutStopSec={settings.stop_timeout_s}
LimitNOFILE=1048576

[Install]
WantedBy=multi-user.target
"""


class _ForTheNode(ast.NodeTransformer):
    """Drops docstrings and type annotations: what a reader of the repository needs, not the node."""

    def _body(self, node: ast.Module | ast.ClassDef | ast.FunctionDef) -> None:
        first = node.body[0] if node.body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            node.body = node.body[1:] or [ast.Pass()]

    def visit_Module(self, node: ast.Module) -> ast.AST:
        self._body(node)
        return self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        self._body(node)
        return self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self._body(node)
        node.returns = None
        a = node.args
        for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, (a.vararg, a.kwarg))]:
            arg.annotation = None
        return self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | None:
        if node.value is None:
            return None
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)


def shipped_metrics_proxy() -> str:
    """metrics_proxy.py as nodes get it: the same code without docstrings, comments and annotations.

    EC2 user data is at most 16 KiB gzipped, and bkf-node.sh with idleStop's check already takes
    about 13 KiB of it: the source as it is in the repository would not fit beside them.
    """
    tree = _ForTheNode().visit(ast.parse(METRICS_PROXY_PATH.read_text()))
    return "#!/usr/bin/env python3\n# components/node/metrics_proxy.py of buildkit-farm, without docstrings and " \
           "annotations (EC2 user data is small)\n" + ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def render_metrics_unit(settings: NodeSettings) -> str:
    """bkf-metrics.service: started with buildkitd (WantedBy), stopped and restarted with it (PartOf)."""
    return f"""# Rendered by buildkit-farm; changes are overwritten.
[Unit]
Description=mTLS metrics endpoint of buildkit-farm node {settings.node_name} (port {settings.metrics_port})
After=buildkitd.service
PartOf=buildkitd.service
StartLimitIntervalSec=0

[Service]
ExecStart={INSTALL_DIR}/bkf-node.sh metrics
Restart=always
RestartSec=1

[Install]
WantedBy=buildkitd.service
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


def _config_files(files: Mapping[str, str]) -> list[str]:
    """Files the TOML names (registry CAs): 0600 in 0700 directories, stale files in them removed."""
    parts = []
    for d in sorted({posixpath.dirname(p) for p in files}):
        names = sorted(posixpath.basename(p) for p in files if posixpath.dirname(p) == d)
        parts.append(f"install -d -m 0700 '{d}'\n")
        parts += [heredoc(f"{d}/{n}", files[f"{d}/{n}"], "0600") for n in names]
        keep = " ".join(f"! -name '{n}'" for n in names)
        parts.append(f"find '{d}' -mindepth 1 -maxdepth 1 {keep} -exec rm -rf {{}} +\n")
    return parts


def render_payload(settings: NodeSettings, buildkitd_toml: str, action: str = "install",
                   script: str | None = None, files: Mapping[str, str] | None = None,
                   idle: IdleStop | None = None) -> str:
    """A self-contained bash program that sets up the node and runs ``bkf-node.sh <action>``.

    ``files`` (path -> content) are the other files the TOML names (registry CA certificates).
    With ``idle`` (config idleStop) it also installs the idle check and, after the install,
    enables it. Without either, the payload is what it always was.
    """
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
        heredoc(ENV_FILE, render_env_file(settings), "0644"),
        # without registries: the CA files a stack with them left behind go too
        *(_config_files(files) if files else [f"rm -rf '{layout.registry_dir}'\n"]),
        heredoc(layout.config_path, buildkitd_toml, "0644"),
        heredoc(f"{INSTALL_DIR}/bkf-node.sh", script, "0755"),
        heredoc(UNIT_FILE, render_systemd_unit(settings), "0644"),
    ]
    if settings.metrics_port:
        parts += [heredoc(METRICS_PROXY_FILE, shipped_metrics_proxy(), "0755"),
                  heredoc(METRICS_UNIT_FILE, render_metrics_unit(settings), "0644")]
    if settings.per_boot_hook:
        parts.append(heredoc(PER_BOOT_HOOK_FILE, render_per_boot_hook(), "0755"))
    if idle is not None and action == "install":
        service, timer = render_idle_units(idle)
        parts += [
            heredoc(IDLE_SCRIPT, render_idle_script(idle, settings), "0755"),
            heredoc(f"{INSTALL_DIR}/bkf-idle.service", service, "0644"),
            heredoc(f"{INSTALL_DIR}/bkf-idle.timer", timer, "0644"),
            # last: newer than the env file (an install without idleStop makes the env file newer)
            f"touch '{IDLE_MARKER}'\n",
            f"'{INSTALL_DIR}/bkf-node.sh' {action}\n",
            f"exec '{IDLE_SCRIPT}' enable\n",
        ]
        return "".join(parts)
    parts += [
        f"exec '{INSTALL_DIR}/bkf-node.sh' {action}\n",
    ]
    return "".join(parts)


def render_uninstall(purge_state: bool, remove_dirs: tuple[str, ...] = (), idle: bool = False) -> str:
    """The delete command: run the installed script's uninstall (no-op if absent).

    ``remove_dirs``: directories the payload made besides the script's own (registry CAs); with
    idleStop on, the idle check is disabled first.
    """
    flag = " --purge-state" if purge_state else ""
    first = f"if [ -x '{IDLE_SCRIPT}' ]; then '{IDLE_SCRIPT}' disable; fi; " if idle else ""
    rm = "".join(f"rm -rf '{d}'; " for d in remove_dirs)
    return first + rm + (f"if [ -x '{INSTALL_DIR}/bkf-node.sh' ]; then "
            f"'{INSTALL_DIR}/bkf-node.sh' uninstall{flag}; else echo 'nothing installed'; fi")


def render_cert_bundle(ca_pem: str, cert_pem: str, key_pem: str, otel_headers: str = "") -> str:
    """The stdin bundle bkf-node.sh splits into ca.pem, cert.pem and key.pem, and with config
    otel.headers the OTEL_EXPORTER_OTLP_HEADERS value (a secret like the key: it travels beside it)."""
    def block(name: str, pem: str) -> str:
        return f"### {name}\n{pem.strip()}\n"
    headers = block("otel-headers", otel_headers) if otel_headers else ""
    return block("ca.pem", ca_pem) + block("cert.pem", cert_pem) + block("key.pem", key_pem) + headers


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def artifact_name(version: str, arch: str) -> str:
    return f"buildkit-{version}.linux-{arch}.tar.gz"
