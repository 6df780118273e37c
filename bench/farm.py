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
from pathlib import Path
from typing import Any

from harness.farm import Farm, running_farm
from harness.hosts import TESTHOSTS, run, running_hosts
from harness.registries import running_registries

STACK = "bench"
HOSTS = {"h41": "amd64-1", "h42": "arm64-1"}
BUILDER = "bkf-bench"
REGISTRY = "10.77.0.1:5481"


def answers(farm: Farm, node: str) -> bool:
    """One mTLS call (what a client waits for): `buildctl debug workers`, 1 s timeout."""
    return subprocess.run([*farm.buildctl_argv(node), "--timeout", "1", "debug", "workers"],
                          capture_output=True).returncode == 0


def wait_answers(farm: Farm, node: str, since: float, timeout: float = 120) -> float:
    """Seconds from ``since`` (a monotonic time) to the node's first answered mTLS call."""
    while time.monotonic() - since < timeout:
        if answers(farm, node):
            return time.monotonic() - since
        time.sleep(0.02)
    raise RuntimeError(f"{node} did not answer over mTLS within {timeout} s")


def daemon_pid(farm: Farm, node: str) -> int:
    return int(farm.hosts.ssh(farm.host(node), "cat /run/buildkit/buildkitd.pid").stdout.strip())


def restart(farm: Farm, node: str) -> float:
    """`bkf-node.sh restart` over SSH; seconds from issuing it to the first answered mTLS call."""
    t0 = time.monotonic()
    farm.hosts.ssh(farm.host(node), "/opt/buildkit-farm/bkf-node.sh restart")
    return wait_answers(farm, node, t0)


def kill9(farm: Farm, node: str) -> float:
    """kill -9 of buildkitd (hosts share this machine's PID namespace); seconds to the next answer."""
    pid = daemon_pid(farm, node)
    t0 = time.monotonic()
    os.kill(pid, 9)
    while answers(farm, node) and time.monotonic() - t0 < 10:  # the old daemon may still be closing
        time.sleep(0.01)
    return wait_answers(farm, node, t0)


def reinstall(farm: Farm, node: str) -> float:
    """A fresh install: the node's uninstall then install payloads as `pulumi up` runs them (read
    from the stack's state; the cache on the data volume stays). Seconds from starting the
    install on a host without buildkit to the first answered mTLS call."""
    state = json.loads(farm.pulumi("stack", "export", "--show-secrets").stdout)["deployment"]["resources"]

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
    host = farm.host(node)
    farm.hosts.ssh(host, plain(install["delete"]))
    ssh = ["bash", str(TESTHOSTS), "ssh", host.name]
    subprocess.run([*ssh, f"mkdir -p '{Path(remote).parent}' && cat >'{remote}'"], input=artifact.read_bytes(),
                   env=farm.hosts.env, check=True, capture_output=True)
    t0 = time.monotonic()
    farm.hosts.ssh(host, plain(install["create"]), stdin=plain(install.get("stdin", "")))
    return wait_answers(farm, node, t0)


@contextmanager
def bench_farm(workdir: Path, log: Any = print) -> Iterator[Farm]:
    """Hosts, registry, `pulumi up`; on the way out (also on failure) destroy, registry down, purge."""
    d = workdir / "farm"
    d.mkdir(parents=True, exist_ok=True)
    with running_hosts(list(HOSTS), d / "state") as hs, running_registries(workdir / "registry") as regs:
        regs.up("bench", REGISTRY)
        trusted = {REGISTRY: {"ca": regs.ca.read_text()}}
        with running_farm(hs, STACK, d, HOSTS, BUILDER, registries=trusted, up=False) as farm:
            try:
                log(f"pulumi up: farm of {', '.join(f'{n} on {h}' for h, n in HOSTS.items())}")
                farm.up()
                yield farm
            finally:
                log("tear-down: pulumi destroy, registry down, test hosts purged")
    # running_hosts brought the hosts down; purge drops their data images and keys too
    run(["bash", str(TESTHOSTS), "purge"], env=hs.env, check=False)
