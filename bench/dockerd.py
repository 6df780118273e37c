"""A Docker engine of the bench's own (Debian's docker.io, as tests/e2e/test_registry.py starts
one for `--load`): unix socket and data root in the work dir, no network of its own, and the
bench registry allowed (`--insecure-registry`: the engine still speaks TLS to it, it only skips
the check against the registry's private CA, so nothing is written to /etc/docker). Stopped and
its mounts released on the way out, also on failure.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def running_dockerd(d: Path, registry: str) -> Iterator[str]:
    """The engine's DOCKER_HOST (unix://...) while the block runs."""
    dockerd, docker = shutil.which("dockerd"), shutil.which("docker")
    if not dockerd or not docker:
        raise RuntimeError("dockerd and docker are needed (the toolchain installs Debian's docker.io)")
    d.mkdir(parents=True)
    host = f"unix://{d / 'docker.sock'}"
    with open(d / "dockerd.log", "w") as log:
        proc = subprocess.Popen(
            [dockerd, "--data-root", str(d / "data"), "--exec-root", str(d / "exec"), "--host", host,
             "--pidfile", str(d / "dockerd.pid"), "--bridge", "none", "--iptables=false", "--ip6tables=false",
             "--ip-masq=false", "--userland-proxy=false", "--insecure-registry", registry,
             "--containerd-namespace", "bkf-bench", "--containerd-plugins-namespace", "bkf-bench-p"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            for _ in range(300):
                if subprocess.run([docker, "--host", host, "version"], capture_output=True).returncode == 0:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"dockerd exited {proc.returncode}:\n{(d / 'dockerd.log').read_text()[-3000:]}")
                time.sleep(0.2)
            else:
                raise RuntimeError(f"dockerd did not answer:\n{(d / 'dockerd.log').read_text()[-3000:]}")
            yield host
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for line in Path("/proc/mounts").read_text().splitlines():
                if str(d) in line:
                    subprocess.run(["umount", "-l", line.split()[1]], check=False)
            shutil.rmtree(d, ignore_errors=True)
