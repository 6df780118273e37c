"""Under load: concurrent builds from different contexts against one node all complete; the figures
(builds per minute, p50/p95 wall time, the daemon's memory peak) go to the table, never into an assert."""

from __future__ import annotations

import hashlib
import secrets
import statistics
import subprocess
import time

import pytest

from tests.reliability import figures
from tests.reliability.conftest import NODES
from tests.reliability.farm import Farm

pytestmark = pytest.mark.reliability

HOST = NODES[0]
DOCKERFILE = """FROM scratch AS work
ADD rootfs-amd64.tar /
COPY data /data
RUN sha256sum /data | cut -d' ' -f1 > /sum && \\
    dd if=/dev/urandom of=/blob bs=1M count=8 2>/dev/null && wc -c < /blob > /size
FROM scratch
COPY --from=work /sum /size /
"""


def test_concurrent_builds_from_different_contexts_all_complete(farm: Farm) -> None:
    n = figures.CONCURRENT
    data = {i: secrets.token_hex(4096) for i in range(n)}
    ctxs = {i: farm.context(f"load-{i}", DOCKERFILE, {"data": data[i]}) for i in range(n)}
    outs = {i: farm.dir / f"load-out-{i}" for i in range(n)}
    argvs = {i: farm.build_argv(HOST, ctxs[i], out=outs[i]) for i in range(n)}
    started: dict[int, float] = {}
    wall: dict[int, float] = {}
    procs: dict[int, subprocess.Popen[str]] = {}
    t0 = time.monotonic()
    for i in range(n):
        started[i] = time.monotonic()
        procs[i] = subprocess.Popen(argvs[i], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    errors: dict[int, str] = {}
    pending = set(procs)
    deadline = time.monotonic() + 900  # a bound for a hang, not a timing assert
    while pending and time.monotonic() < deadline:
        for i in list(pending):
            if procs[i].poll() is not None:
                wall[i] = time.monotonic() - started[i]
                pending.discard(i)
        time.sleep(0.05)
    elapsed = time.monotonic() - t0
    for i, p in procs.items():
        if p.poll() is None:
            p.kill()
        _, err = p.communicate()
        if p.returncode != 0:
            errors[i] = err[-1500:]
    ok = [i for i in range(n) if i not in errors and i not in pending
          and (outs[i] / "sum").read_text().strip() == hashlib.sha256(data[i].encode()).hexdigest()
          and (outs[i] / "size").read_text().strip() == str(8 << 20)]
    pid = farm.daemon_pid(HOST)
    hwm = farm.ssh(HOST, f"grep VmHWM /proc/{pid}/status").stdout.split()[1:]
    times = sorted(wall.values())
    figures.record(f"{n} concurrent builds, one node: completed", figures.ratio(len(ok), n))
    if len(times) == n:
        q = statistics.quantiles(times, n=20)
        figures.record("load: builds per minute", f"{n / elapsed * 60:.1f} ({n} in {elapsed:.1f} s)")
        figures.record("load: wall time p50 / p95", f"{statistics.median(times):.2f} s / {q[18]:.2f} s")
    figures.record("load: buildkitd memory peak (VmHWM)", " ".join(hwm))
    assert not pending, f"builds {sorted(pending)} did not finish"
    assert not errors, errors
    assert len(ok) == n, "some builds gave wrong results"
