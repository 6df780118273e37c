"""Nothing lost: kill -9 of buildkitd mid-build (the supervisor brings it back, the client gets an error
and does not hang, the cache mount and the layer cache are intact), corrupt state databases, a
second daemon on the same state dir, and an uninstall that leaves no mounts, processes or rules."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from tests.reliability import figures
from tests.reliability.conftest import NODES
from tests.reliability.farm import Farm

pytestmark = pytest.mark.reliability

HOST = NODES[0]
#: the layer step (a fresh uuid each time it really runs), then one cache-mount step whose MODE seeds the
#: mount, hangs in it (the build that gets killed) or copies the seed out (the check)
KILL_DOCKERFILE = """FROM scratch
ADD rootfs-amd64.tar /
RUN cat /proc/sys/kernel/random/uuid > /layer
ARG MODE
ARG ROUND
RUN --mount=type=cache,target=/c,id=bkf-rel-kill sh -c 'case "$MODE" in \\
  seed) cat /proc/sys/kernel/random/uuid > /c/seed ;; \\
  hang) echo "BKF-RUNNING-$ROUND"; sleep 120 ;; \\
  check) cp /c/seed /seed ;; esac; echo "$ROUND" > /round'
"""
LAYER_CACHED = re.compile(r"RUN cat /proc/sys/kernel/random/uuid > /layer\n#\d+ CACHED")


def wait_for_text(path: os.PathLike[str], text: str, proc: subprocess.Popen[bytes], attempts: int = 240) -> bool:
    """Poll (0.25 s apart, bounded) until ``text`` is in the file the client writes its progress to."""
    for _ in range(attempts):
        with open(path, errors="replace") as f:
            if text in f.read():
                return True
        if proc.poll() is not None:
            return False
        time.sleep(0.25)
    return False


def test_kill9_mid_build_daemon_returns_and_nothing_is_lost(farm: Farm) -> None:
    ctx = farm.context("kill9", KILL_DOCKERFILE)
    seed_out = farm.dir / "kill-seed"
    farm.build(HOST, ctx, out=seed_out, build_args={"MODE": "seed", "ROUND": "seed"})
    layer, seed = (seed_out / "layer").read_text(), None
    survived = errored = lost = 0
    problems: list[str] = []
    for i in range(figures.KILLS):
        log = farm.dir / f"kill-{i}.log"
        with open(log, "wb") as err:
            client = subprocess.Popen(farm.build_argv(HOST, ctx, build_args={"MODE": "hang", "ROUND": str(i)}),
                                      stdout=subprocess.DEVNULL, stderr=err)
        try:
            if not wait_for_text(log, f"BKF-RUNNING-{i}", client):
                problems.append(f"round {i}: the build never reached its RUN step: {log.read_text()[-800:]}")
                continue
            pid = farm.daemon_pid(HOST)
            os.kill(int(pid), signal.SIGKILL)  # the hosts share this machine's PID namespace
            try:
                rc = client.wait(timeout=120)
                errored += rc != 0
                if rc == 0:
                    problems.append(f"round {i}: the interrupted client exited 0")
            except subprocess.TimeoutExpired:
                problems.append(f"round {i}: the interrupted client hung (killed after 120 s)")
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        new = farm.wait_serving(HOST, not_pid=pid)
        if not new:
            tail = farm.ssh(HOST, "tail -5 /var/log/buildkit-farm/buildkitd.log").stdout
            problems.append(f"round {i}: buildkitd did not come back: {tail}")
            break
        survived += 1
        out = farm.dir / f"kill-check-{i}"
        r = farm.build(HOST, ctx, out=out, build_args={"MODE": "check", "ROUND": str(i)}, check=False)
        got_seed = (out / "seed").read_text() if (out / "seed").exists() else None
        seed = seed or got_seed
        intact = (r.returncode == 0 and (out / "layer").read_text() == layer and LAYER_CACHED.search(r.stderr)
                  and got_seed is not None and got_seed == seed)
        if not intact:
            lost += 1
            problems.append(f"round {i}: cache not intact (rc {r.returncode}): {r.stderr[-1500:]}")
    # the killed daemons' build containers and their rootfs mounts were cleared when the next one started
    mounts = farm.ssh(HOST, "grep -c ' /var/lib/buildkit/runc-[^ ]*/executor/' /proc/self/mountinfo || true")
    orphans = subprocess.run(["pgrep", "-f", "BKF-RUNNING-"], capture_output=True, text=True).stdout.split()
    figures.record("kill -9 mid-build: build containers / their mounts left running",
                   f"{len(orphans)}/{mounts.stdout.strip()}")
    if orphans or mounts.stdout.strip() != "0":
        problems.append(f"left behind: {len(orphans)} build step processes, {mounts.stdout.strip()} mounts")
    figures.record("kill -9 mid-build: daemon back by itself", figures.ratio(survived, figures.KILLS))
    figures.record("kill -9 mid-build: client got an error, no hang", figures.ratio(errored, figures.KILLS))
    figures.record("kill -9 mid-build: cache mount or layer cache lost", str(lost))
    assert not problems, "\n".join(problems)
    assert seed is not None and seed.strip(), "the seed never came back out of the cache mount"


def test_corrupt_state_databases_are_rebuilt(farm: Farm) -> None:
    ctx = farm.context("after-corruption", "FROM scratch\nADD rootfs-amd64.tar /\nARG N\nRUN echo $N > /n\n")
    farm.build(HOST, ctx, build_args={"N": "before"})
    st = "/var/lib/buildkit"
    farm.ssh(HOST, "/opt/buildkit-farm/bkf-node.sh stop && "
                   f"for db in cache.db history.db; do test -s {st}/$db && head -c 65536 /dev/urandom > {st}/$db; done")
    farm.ssh(HOST, "/opt/buildkit-farm/bkf-node.sh start", timeout=180)
    assert farm.wait_serving(HOST), "buildkitd did not start on corrupt databases"
    # upstream moves a corrupt database aside (*.bak) and starts a fresh one
    aside = farm.ssh(HOST, f"ls {st}").stdout.split()
    r = farm.build(HOST, ctx, build_args={"N": "after"}, check=False)
    rebuilt = [db for db in ("cache.db", "history.db")
               if db in aside and any(re.fullmatch(rf"{re.escape(db)}\.\w+\.bak", f) for f in aside)]
    figures.record("corrupt cache.db + history.db: daemon starts, builds", "yes" if r.returncode == 0 and
                   len(rebuilt) == 2 else f"no (rc {r.returncode}, set aside: {rebuilt})")
    assert rebuilt == ["cache.db", "history.db"], aside
    assert r.returncode == 0, r.stderr[-2000:]


def test_a_second_daemon_on_the_same_state_dir_is_refused(farm: Farm) -> None:
    pid = farm.daemon_pid(HOST)
    r = farm.ssh(HOST, "timeout 60 /opt/buildkit-farm/bin/buildkitd --config /etc/buildkit/buildkitd.toml "
                       "--addr unix:///run/buildkit/second.sock --tlscert /etc/buildkit/tls/cert.pem "
                       "--tlskey /etc/buildkit/tls/key.pem --tlscacert /etc/buildkit/tls/ca.pem", check=False)
    refused = r.returncode not in (0, 124) and "could not lock /var/lib/buildkit/buildkitd.lock" in r.stderr
    ctx = farm.context("after-second", "FROM scratch\nADD rootfs-amd64.tar /\nARG N\nRUN echo $N > /n\n")
    b = farm.build(HOST, ctx, build_args={"N": str(time.time())}, check=False)
    first_ok = farm.daemon_pid(HOST) == pid and b.returncode == 0
    figures.record("second daemon on the same state dir refused, first unharmed",
                   "yes" if refused and first_ok else "no")
    assert refused, (r.returncode, r.stderr[-2000:])
    assert first_ok, b.stderr[-2000:]


def host_leftovers(farm: Farm, host: str) -> dict[str, list[str]]:
    """What a node could leave behind in its host: processes (other than sshd), mounts, firewall rules
    and links the node made."""
    procs = [p for p in farm.hosts.processes(farm.host(host)) if not p.startswith(("/usr/sbin/sshd", "sshd"))]
    # mounts on the state dir or below, or of the host's data device (the host's mount namespace also
    # holds copies of this machine's other mounts, made before it: not the node's)
    dev = os.path.realpath(f"/run/bkf-testhosts/{host}/data-device")
    ours = [m for m in farm.ssh(host, "cat /proc/mounts").stdout.splitlines()
            if m.split()[1].startswith("/var/lib/buildkit") or m.split()[0] == dev]
    rules = [line for line in farm.ssh(host, "iptables-save; ip6tables-save").stdout.splitlines()
             if re.search(r"BKF|CNI|bkf0|10\.213\.", line)]
    links = [line for line in farm.ssh(host, "ip -o link").stdout.splitlines() if re.search(r"bkf0|veth", line)]
    return {"processes": procs, "mounts": ours, "firewall": rules, "links": links}


@pytest.mark.parametrize("host", NODES)
def test_uninstall_leaves_no_mounts_processes_or_rules(farm: Farm, host: str) -> None:
    r = farm.ssh(host, "/opt/buildkit-farm/bkf-node.sh uninstall")
    assert "uninstalled (build state kept)" in r.stderr, r.stderr
    left = host_leftovers(farm, host)
    figures.record(f"uninstall leftovers on {host} (processes/mounts/rules/links)",
                   "/".join(str(len(v)) for v in left.values()))
    assert left == {"processes": [], "mounts": [], "firewall": [], "links": []}, \
        "\n".join(f"{k}: {line}" for k, v in left.items() for line in v)
    # and a node installed again on the same volume serves builds
    assert "buildkitd is up" in farm.install(host)
