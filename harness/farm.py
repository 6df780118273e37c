"""A farm the real program stands up on running test hosts: a test stack of the ssh backend (one
node per host), the client files from its outputs, and buildctl/buildx helpers."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.hosts import Host, HostSet, Pem, make_artifact, need, run
from harness.stack import Stack, running_stack, stack_config


@dataclass
class Farm:
    hosts: HostSet
    stack: Stack
    #: host -> node name
    nodes_on: dict[str, str]
    builder: str
    #: the stack's outputs as of the last up() or read_outputs()
    outputs: dict[str, Any] = field(default_factory=dict)
    #: how long the last up()'s `pulumi up` took
    up_seconds: float = 0.0

    @property
    def dir(self) -> Path:
        return self.stack.dir

    @property
    def env(self) -> dict[str, str]:
        return self.stack.env

    @property
    def ca(self) -> Path:
        return self.dir / "farm-ca.pem"

    @property
    def client(self) -> Pem:
        return Pem(self.dir / "client.pem", self.dir / "client.key")

    def pulumi(self, *args: str, config: Path | None = None, env: dict[str, str] | None = None, check: bool = True,
               timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return self.stack.pulumi(*args, config=config, env=env, check=check, timeout=timeout)

    def up(self, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
        """`pulumi up` without a preview; then the outputs and client files are read again."""
        t0 = time.monotonic()
        r = self.pulumi("up", "--yes", "--skip-preview", *args, config=config)
        self.up_seconds = time.monotonic() - t0
        self.read_outputs()
        return r

    def read_outputs(self) -> dict[str, Any]:
        """The stack's outputs; the CA and the client cert and key (0600) written where ca/client say."""
        self.outputs = self.stack.outputs()
        self.ca.write_text(self.outputs["caCert"])
        self.client.cert.write_text(self.outputs["clientCert"])
        self.client.key.write_text(self.outputs["clientKey"])
        self.client.key.chmod(0o600)
        return self.outputs

    def host(self, node: str) -> Host:
        name = next(h for h, n in self.nodes_on.items() if n == node)
        return self.hosts.host(name)

    def node(self, name: str) -> dict[str, str]:
        return dict(next(n for n in self.outputs["nodes"] if n["name"] == name))

    def buildctl_argv(self, node: str) -> list[str]:
        """buildctl with the node's address and the farm's client files (mTLS)."""
        n = self.node(node)
        return [need("buildctl")["buildctl"], "--addr", n["endpoint"], "--tlsservername", n["serverName"],
                "--tlscacert", str(self.ca), "--tlscert", str(self.client.cert), "--tlskey", str(self.client.key)]

    def buildctl(self, node: str, *args: str, check: bool = True,
                 timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run([*self.buildctl_argv(node), *args], check=check, timeout=timeout)

    def history(self, node: str) -> list[dict[str, Any]]:
        """The node daemon's build records (`buildctl debug histories`)."""
        out = self.buildctl(node, "debug", "histories", "--format", "{{json .}}").stdout
        return [json.loads(x)["record"] for x in out.splitlines() if x.strip()]

    def buildx(self, *args: str, check: bool = True, timeout: float = 900,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """docker-buildx with the stack's BUILDX_CONFIG (where the program made the builder)."""
        return run(["docker-buildx", *args], env={**self.env, **(env or {})}, check=check, timeout=timeout,
                   cwd=self.dir)

    def build(self, ctx: Path, *args: str, check: bool = True,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`docker-buildx build` of ``ctx`` on the program's builder."""
        return self.buildx("build", "--builder", self.builder, "--progress", "plain", *args, str(ctx), check=check,
                           env=env)


@contextmanager
def running_farm(hosts: HostSet, name: str, d: Path, nodes_on: dict[str, str], builder: str, *,
                 registries: dict[str, Any] | None = None, env: dict[str, str] | None = None,
                 config: Path | None = None, up: bool = True) -> Iterator[Farm]:
    """Stack ``name`` of the local farm's config on ``hosts`` (``nodes_on``: host -> node name), the
    artifact made here; ``registries``: the stack's `registries:`; ``up``: `pulumi up` before the block.
    Destroyed and removed after it (running_stack)."""
    artifacts = d / "artifacts"
    make_artifact(artifacts)
    cfg = stack_config(nodes_on, builder, hosts.state, artifacts)
    if registries is not None:
        cfg["buildkit-farm:registries"] = registries
    with running_stack(name, d, cfg, env=env, config=config) as s:
        farm = Farm(hosts, s, nodes_on, builder)
        if up:
            farm.up()
        yield farm
