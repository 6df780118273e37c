"""The "ephemeral CI runner": a throwaway buildkitd with empty state, started and killed per build.

It runs on this machine (not in a test host) with a fresh state dir on the same disk as the
nodes' data volumes, a unix socket in a short temp dir, and RUN steps on the host network (no
CNI: the workload never dials out). buildx reaches it through a remote-driver builder of its own.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def ephemeral_buildkitd(workdir: Path, env: dict[str, str], registry: str | None = None,
                        registry_ca: Path | None = None, name: str = "bench-ephemeral") -> Iterator[str]:
    """Yields the name of a buildx builder on a fresh buildkitd; everything is gone afterwards."""
    state = Path(tempfile.mkdtemp(prefix="ephemeral-", dir=workdir))
    sockdir = Path(tempfile.mkdtemp(prefix="bkf-bench-"))  # unix socket paths must stay short
    sock = sockdir / "buildkitd.sock"
    config = state / "buildkitd.toml"
    lines = ["[worker.oci]", "  enabled = true", '  networkMode = "host"', "[worker.containerd]", "  enabled = false"]
    if registry and registry_ca:
        lines += [f'[registry."{registry}"]', f'  ca = ["{registry_ca}"]']
    config.write_text("\n".join(lines) + "\n")
    log = (state / "buildkitd.log").open("w")
    proc = subprocess.Popen(["buildkitd", "--config", str(config), "--root", str(state / "root"),
                             "--addr", f"unix://{sock}"], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(f"ephemeral buildkitd exited {proc.returncode}: "
                                   f"{(state / 'buildkitd.log').read_text()[-2000:]}")
            if subprocess.run(["buildctl", "--addr", f"unix://{sock}", "debug", "workers"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("ephemeral buildkitd did not answer in 30 s")
        subprocess.run(["docker-buildx", "rm", name], env=env, capture_output=True)
        subprocess.run(["docker-buildx", "create", "--name", name, "--driver", "remote", f"unix://{sock}"],
                       env=env, check=True, capture_output=True)
        yield name
    finally:
        subprocess.run(["docker-buildx", "rm", name], env=env, capture_output=True)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        # a daemon that was killed can leave its snapshot mounts behind: unmount before removing
        mounts = [ln.split()[1] for ln in Path("/proc/self/mounts").read_text().splitlines()
                  if ln.split()[1].startswith(str(state))]
        for m in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(sockdir, ignore_errors=True)
