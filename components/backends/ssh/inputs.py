"""The files an SSH farm's config points at (the SSH key, node artifacts), read before anything is created."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pulumi

from components.backends.base import HostInputs
from components.backends.ssh.config import SshFarmConfig
from components.config.errors import ConfigError
from components.node.payload import artifact_name, sha256_file


def _agent_problem(path: str) -> str | None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
        except OSError as e:
            return e.strerror or str(e)
    return None


def read_host_inputs(cfg: SshFarmConfig, stack: str) -> HostInputs:
    """Problems are config errors, each naming the key and the file."""
    problems: list[str] = []
    key_path = Path(cfg.ssh.private_key_path).expanduser()
    key: str | None = None
    try:
        key = key_path.read_text()
    except OSError as e:
        problems.append(f"ssh.privateKeyPath: {str(key_path)!r} cannot be read ({e.strerror})")
    artifacts: dict[str, tuple[str, str]] = {}
    if cfg.ssh.artifact_dir:
        root = Path(cfg.ssh.artifact_dir).expanduser().resolve()
        for n in cfg.nodes:
            path = root / artifact_name(cfg.buildkit.version, n.host_arch)
            if not path.is_file():
                problems.append(f"ssh.artifactDir: {str(root)!r} has no {path.name} for node {n.name}")
                continue
            artifacts[n.name] = (str(path), sha256_file(path))
    agent = cfg.ssh.agent_socket or os.environ.get("SSH_AUTH_SOCK") or None
    if agent and (why := _agent_problem(agent)):
        source = "ssh.agentSocket" if cfg.ssh.agent_socket else "$SSH_AUTH_SOCK"
        problems.append(
            f"ssh.agentSocket: the SSH agent at {agent!r} ({source}) does not answer ({why}); the command provider "
            "dials it for every remote command and aborts when it cannot: start the agent, unset SSH_AUTH_SOCK "
            "(the key at ssh.privateKeyPath is enough), or set ssh.agentSocket to a live agent")
    if problems:
        raise ConfigError(problems)
    return HostInputs(stack=stack, ssh_private_key=pulumi.Output.secret(key or ""), artifacts=artifacts)
