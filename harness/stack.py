"""A test stack: the real program on a local file backend, its config file written from a dict,
always destroyed and removed at the end (also when the block fails)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.hosts import ROOT, run

#: the pulumi commands that run the program and so read the stack's config
RUNS_PROGRAM = frozenset({"up", "preview", "destroy", "refresh"})


def file_backend(d: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a test stack's pulumi commands: a local file backend and a fresh
    passphrase under ``d``, and a BUILDX_CONFIG of its own (``base``: os.environ by default)."""
    (d / "passphrase").write_text(secrets.token_hex(16))
    (d / "backend").mkdir(exist_ok=True)
    return {**(base if base is not None else os.environ), "PULUMI_BACKEND_URL": f"file://{d / 'backend'}",
            "PULUMI_CONFIG_PASSPHRASE_FILE": str(d / "passphrase"), "BUILDX_CONFIG": str(d / "buildx")}


def stack_config(hosts: dict[str, str], builder: str, host_state: Path, artifacts: Path) -> dict[str, Any]:
    """The local stack's config (Pulumi.local.yaml) pointed at a test's own hosts and files, with
    each host's SSH key pinned (as production stacks should). ``hosts``: host -> node name."""
    cfg: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text())["config"]
    # the nodes the test names, in the config's order (a test may leave out the local farm's spares)
    host_of = {name: host for host, name in hosts.items()}
    nodes = cfg["buildkit-farm:nodes"] = [n for n in cfg["buildkit-farm:nodes"] if n["name"] in host_of]
    assert sorted(n["name"] for n in nodes) == sorted(host_of), (nodes, hosts)
    for node in nodes:
        host = host_of[node["name"]]
        node["host"] = f"10.77.0.{10 + int(host[1:])}"
        node["dataDevice"] = f"/run/bkf-testhosts/{host}/data-device"
        node["sshHostKey"] = (host_state / "hosts" / host / "ssh_host_ed25519_key.pub").read_text().strip()
    cfg["buildkit-farm:builder"]["name"] = builder
    cfg["buildkit-farm:ssh"] = {"privateKeyPath": str(host_state / "ssh" / "id_ed25519"),
                                "artifactDir": str(artifacts)}
    return cfg


def init_salt(name: str, project: Path, scratch_parent: Path, env: dict[str, str]) -> str:
    """`stack init` in a scratch copy of the project's Pulumi.yaml (init writes the passphrase salt
    into Pulumi.<stack>.yaml of the project it runs in, which the caller's config file must carry:
    so a config file can live anywhere); returns that salt."""
    scratch = scratch_parent / f"init-{secrets.token_hex(4)}"
    scratch.mkdir()
    shutil.copy(project / "Pulumi.yaml", scratch)
    run(["pulumi", "stack", "init", name, "--non-interactive"], cwd=scratch, env=env)
    salt = str(yaml.safe_load((scratch / f"Pulumi.{name}.yaml").read_text())["encryptionsalt"])
    shutil.rmtree(scratch)
    return salt


@dataclass
class Stack:
    """A stack of the program on its own file backend; its pulumi commands and config files."""

    name: str
    dir: Path
    env: dict[str, str]
    #: the stack's config file (encryptionsalt and config)
    config: Path
    salt: str
    #: the project the pulumi commands run in
    project: Path = ROOT
    #: the teardown's `pulumi destroy` (for tests that assert it succeeded)
    down: subprocess.CompletedProcess[str] | None = None

    def pulumi(self, *args: str, config: Path | None = None, cwd: Path | None = None,
               env: dict[str, str] | None = None, check: bool = True,
               timeout: float = 900) -> subprocess.CompletedProcess[str]:
        """`pulumi <args> --stack <name>` in the project; ``config``: another config file than the stack's."""
        cwd = cwd or self.project
        config = config or self.config
        # pulumi reads Pulumi.<stack>.yaml beside Pulumi.yaml by itself; any other file is named to
        # the commands that run the program (`pulumi stack ...` has no --config-file flag: it refuses it)
        found = config == cwd / f"Pulumi.{self.name}.yaml"
        named = [] if found or args[0] not in RUNS_PROGRAM else ["--config-file", str(config)]
        return run(["pulumi", *args, "--stack", self.name, "--non-interactive", *named], cwd=cwd,
                   env={**self.env, **(env or {})}, check=check, timeout=timeout)

    def outputs(self) -> dict[str, Any]:
        return dict(json.loads(self.pulumi("stack", "output", "--json", "--show-secrets").stdout))

    def read_config(self) -> dict[str, Any]:
        return dict(yaml.safe_load(self.config.read_text())["config"])

    def write_config(self, cfg: dict[str, Any], path: Path | None = None) -> Path:
        """``cfg`` as this stack's config file (or ``path``: another config file of this stack)."""
        path = path or self.config
        path.write_text("# generated by harness/stack.py (gitignored)\n"
                        + yaml.safe_dump({"encryptionsalt": self.salt, "config": cfg}, sort_keys=False))
        return path

    def variant(self, name: str, change: Callable[[dict[str, Any]], object]) -> Path:
        """Another config file of this stack (``<dir>/<name>.yaml``): the current config, changed by ``change``."""
        cfg = self.read_config()
        change(cfg)
        return self.write_config(cfg, self.dir / f"{name}.yaml")


@contextmanager
def running_stack(name: str, d: Path, cfg: dict[str, Any], *, env: dict[str, str] | None = None,
                  config: Path | None = None, project: Path = ROOT) -> Iterator[Stack]:
    """A stack ``name`` of ``project`` on a file backend under ``d`` (``env``: file_backend(d) by
    default), its config ``cfg`` in ``config`` (default: Pulumi.<name>.yaml in the project, as
    pulumi finds it); at the end destroyed, removed and its config file deleted."""
    env = env if env is not None else file_backend(d)
    s = Stack(name, d, env, config or project / f"Pulumi.{name}.yaml", init_salt(name, project, d, env), project)
    s.write_config(cfg)
    try:
        yield s
    finally:
        s.down = s.pulumi("destroy", "--yes", "--skip-preview", check=False)
        s.pulumi("stack", "rm", "--yes", "--force", check=False)
        s.config.unlink(missing_ok=True)
