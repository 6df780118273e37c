"""A Docker engine of one's own (Debian's docker.io): the one harness for the bench's `--load`
scenario (bench/farm_bench.py) and the e2e tier's `--load` test (tests/e2e/test_registry.py). Unix socket and data root
in a given directory, no network of its own (no bridge, no iptables rules), containerd namespaces
of the caller's, and optionally a registry allowed (`--insecure-registry`: the engine still speaks
TLS to it, it only skips the check against the registry's private CA, so nothing is written to
/etc/docker). Stopped and its mounts released on the way out, also on failure; the mounts dockerd
itself left behind are recorded (`Engine.left_mounts`) so a test can insist there were none.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Engine:
    host: str  # DOCKER_HOST, unix://...
    docker: str  # the docker CLI
    left_mounts: list[str] = field(default_factory=list)  # filled on the way out


def _mounts_under(d: Path) -> list[str]:
    return [line for line in Path("/proc/mounts").read_text().splitlines() if str(d) in line]


@contextmanager
def running_dockerd(d: Path, *, namespace: str, insecure_registry: str | None = None) -> Iterator[Engine]:
    """The engine while the block runs; `d` must not exist yet (it is removed afterwards)."""
    dockerd, docker = shutil.which("dockerd"), shutil.which("docker")
    if not dockerd or not docker:
        raise RuntimeError("dockerd and docker are needed (the toolchain installs Debian's docker.io)")
    d.mkdir(parents=True)
    engine = Engine(f"unix://{d / 'docker.sock'}", docker)
    argv = [dockerd, "--data-root", str(d / "data"), "--exec-root", str(d / "exec"), "--host", engine.host,
            "--pidfile", str(d / "dockerd.pid"), "--bridge", "none", "--iptables=false", "--ip6tables=false",
            "--ip-masq=false", "--userland-proxy=false",
            "--containerd-namespace", namespace, "--containerd-plugins-namespace", f"{namespace}-p"]
    if insecure_registry:
        argv += ["--insecure-registry", insecure_registry]
    with open(d / "dockerd.log", "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            for _ in range(300):
                if subprocess.run([docker, "--host", engine.host, "version"], capture_output=True).returncode == 0:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"dockerd exited {proc.returncode}:\n{(d / 'dockerd.log').read_text()[-3000:]}")
                time.sleep(0.2)
            else:
                raise RuntimeError(f"dockerd did not answer:\n{(d / 'dockerd.log').read_text()[-3000:]}")
            yield engine
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            # a clean stop unmounts everything; what is left is recorded, then released anyway
            engine.left_mounts = _mounts_under(d)
            for line in engine.left_mounts:
                subprocess.run(["umount", "-l", line.split()[1]], check=False)
            shutil.rmtree(d, ignore_errors=True)
