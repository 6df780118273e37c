"""The bench's own two-node farm, stood up by the real program: test hosts h41 (amd64-1) and h42
(arm64-1, QEMU-emulated here), a `pulumi up` of the ssh backend with a file backend under the
bench's work dir, a TLS registry on the test bridge (port 5481, its own CA) that the nodes trust,
and everything torn down at the end (pulumi destroy, registry down, hosts purged) even on failure.

Also the node operations the scenarios time: an mTLS probe, restart, kill -9, a payload re-run.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.hosts import (
    ROOT,
    TESTHOSTS,
    Host,
    HostSet,
    Pem,
    file_backend,
    make_artifact,
    run,
    running_hosts,
    write_stack_config,
)

STACK = "bench"
HOSTS = {"h41": "amd64-1", "h42": "arm64-1"}
BUILDER = "bkf-bench"
REGISTRY = "10.77.0.1:5481"
REGISTRY_SH = ROOT / "local" / "registry.sh"


@dataclass
class Farm:
    hosts: HostSet
    dir: Path
    env: dict[str, str]
    registry_dir: Path
    outputs: dict[str, Any] = field(default_factory=dict)
    standup_seconds: float = 0.0

    @property
    def ca(self) -> Path:
        return self.dir / "farm-ca.pem"

    @property
    def client(self) -> Pem:
        return Pem(self.dir / "client.pem", self.dir / "client.key")

    def pulumi(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return run(["pulumi", *args, "--stack", STACK, "--non-interactive"], cwd=ROOT, env=self.env, check=check,
                   timeout=timeout)

    def host(self, node: str) -> Host:
        name = next(h for h, n in HOSTS.items() if n == node)
        return next(h for h in self.hosts.hosts if h.name == name)

    def node(self, name: str) -> dict[str, str]:
        return next(n for n in self.outputs["nodes"] if n["name"] == name)

    def buildctl_argv(self, node: str) -> list[str]:
        n = self.node(node)
        return ["buildctl", "--addr", n["endpoint"], "--tlsservername", n["serverName"], "--tlscacert",
                str(self.ca), "--tlscert", str(self.client.cert), "--tlskey", str(self.client.key)]

    def answers(self, node: str) -> bool:
        """One mTLS call (what a client waits for): `buildctl debug workers`, 1 s timeout."""
        return subprocess.run([*self.buildctl_argv(node), "--timeout", "1", "debug", "workers"],
                              capture_output=True).returncode == 0

    def wait_answers(self, node: str, since: float, timeout: float = 120) -> float:
        """Seconds from ``since`` (a monotonic time) to the node's first answered mTLS call."""
        while time.monotonic() - since < timeout:
            if self.answers(node):
                return time.monotonic() - since
            time.sleep(0.02)
        raise RuntimeError(f"{node} did not answer over mTLS within {timeout} s")

    def daemon_pid(self, node: str) -> int:
        return int(self.hosts.ssh(self.host(node), "cat /run/buildkit/buildkitd.pid").stdout.strip())

    def restart(self, node: str) -> float:
        """`bkf-node.sh restart` over SSH; seconds from issuing it to the first answered mTLS call."""
        t0 = time.monotonic()
        self.hosts.ssh(self.host(node), "/opt/buildkit-farm/bkf-node.sh restart")
        return self.wait_answers(node, t0)

    def kill9(self, node: str) -> float:
        """kill -9 of buildkitd (hosts share this machine's PID namespace); seconds to the next answer."""
        pid = self.daemon_pid(node)
        t0 = time.monotonic()
        os.kill(pid, 9)
        while self.answers(node) and time.monotonic() - t0 < 10:  # the old daemon may still be closing
            time.sleep(0.01)
        return self.wait_answers(node, t0)

    def reinstall(self, node: str) -> float:
        """A fresh install: the node's uninstall then install payloads as `pulumi up` runs them (read
        from the stack's state; the cache on the data volume stays). Seconds from starting the
        install on a host without buildkit to the first answered mTLS call."""
        state = json.loads(self.pulumi("stack", "export", "--show-secrets").stdout)["deployment"]["resources"]

        def one(kind: str, suffix: str) -> dict[str, Any]:
            found = [r for r in state if r["type"] == kind and r["urn"].endswith(f"{node}-{suffix}")]
            if len(found) != 1:
                raise RuntimeError(f"expected one {kind} {node}-{suffix}, found {len(found)}")
            return found[0]["inputs"]

        def plain(v: Any) -> str:
            # a secret in an export: {"<sig>": "...", "plaintext": "<JSON of the value>"}
            return json.loads(v["plaintext"]) if isinstance(v, dict) else v

        install = one("command:remote:Command", "buildkitd")
        artifact = Path(plain(one("command:remote:CopyToRemote", "artifact")["source"]["path"]))
        remote = plain(one("command:remote:CopyToRemote", "artifact")["remotePath"])
        host = self.host(node)
        self.hosts.ssh(host, plain(install["delete"]))
        ssh = ["bash", str(TESTHOSTS), "ssh", host.name]
        subprocess.run([*ssh, f"mkdir -p '{Path(remote).parent}' && cat >'{remote}'"], input=artifact.read_bytes(),
                       env=self.hosts.env, check=True, capture_output=True)
        t0 = time.monotonic()
        self.hosts.ssh(host, plain(install["create"]), stdin=plain(install.get("stdin", "")))
        return self.wait_answers(node, t0)


def _stack_config(farm_dir: Path, state: Path, artifacts: Path, registry_dir: Path) -> Path:
    config = ROOT / f"Pulumi.{STACK}.yaml"
    write_stack_config(config, HOSTS, BUILDER, state, artifacts)
    doc = yaml.safe_load(config.read_text())
    doc["config"]["buildkit-farm:registries"] = {REGISTRY: {"ca": (registry_dir / "ca.pem").read_text()}}
    config.write_text("# generated by bench/farm.py (gitignored)\n" + yaml.safe_dump(doc, sort_keys=False))
    return config


@contextmanager
def bench_farm(workdir: Path, log: Any = print) -> Iterator[Farm]:
    """Hosts, registry, `pulumi up`; on the way out (also on failure) destroy, registry down, purge."""
    d = workdir / "farm"
    d.mkdir(parents=True, exist_ok=True)
    registry_dir = workdir / "registry"
    renv = {**os.environ, "BKF_REGISTRY_DIR": str(registry_dir)}
    config: Path | None = None
    with running_hosts(list(HOSTS), d / "state") as hs:
        farm = Farm(hs, d, file_backend(d), registry_dir)
        try:
            run(["bash", str(REGISTRY_SH), "up", "bench", REGISTRY], env=renv)
            artifacts = d / "artifacts"
            make_artifact(artifacts)
            config = _stack_config(d, d / "state", artifacts, registry_dir)
            farm.pulumi("stack", "init")
            log(f"pulumi up: farm of {', '.join(f'{n} on {h}' for h, n in HOSTS.items())}")
            t0 = time.monotonic()
            farm.pulumi("up", "--yes", "--skip-preview")
            farm.standup_seconds = time.monotonic() - t0
            farm.outputs = json.loads(farm.pulumi("stack", "output", "--json", "--show-secrets").stdout)
            farm.ca.write_text(farm.outputs["caCert"])
            farm.client.cert.write_text(farm.outputs["clientCert"])
            farm.client.key.write_text(farm.outputs["clientKey"])
            farm.client.key.chmod(0o600)
            yield farm
        finally:
            log("tear-down: pulumi destroy, registry down, test hosts purged")
            farm.pulumi("destroy", "--yes", "--skip-preview", check=False)
            farm.pulumi("stack", "rm", "--yes", "--force", check=False)
            if config:
                config.unlink(missing_ok=True)
            run(["bash", str(REGISTRY_SH), "down", "bench"], env=renv, check=False)
    # running_hosts brought the hosts down; purge drops their data images and keys too
    run(["bash", str(TESTHOSTS), "purge"], env=hs.env, check=False)
