"""Tier 3: several nodes per platform on real hosts: cache affinity by key, failover, farm status.

The three-node farm of tests/e2e/scale_farm.py (amd64-1 on h13, arm64-1 on h14, amd64-2 on h15;
the local farm's shape, stood up by a real `pulumi up`, shared with test_ci_action_farm.py); then
the exported create script is run the way CI runs it, with `--key`, and each build is found in the
history of the daemon it ran on (and only there).

Over 300 lines on purpose: one shared farm (three hosts, a stack) serves every check of keys,
loads, failover, status and idle stop; a farm per file would stand the same farm up again.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from components.builder.affinity import rank
from components.node.idle import IDLE_LOG
from harness.farm import Farm
from harness.hosts import ROOT, children_started, run, sample_context
from tests.e2e.scale_farm import AMD, BUILDER, HOSTS, answers, keys_for_each_amd64_node, ran_on

pytestmark = pytest.mark.e2e


def create_builder(farm: Farm, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The exported create script, run as CI runs it (PEMs in the environment; `env`: more, such as
    a CI job's own BUILDX_CONFIG)."""
    script = farm.dir / "create.sh"
    script.write_text(farm.outputs["buildxCreateScript"])
    full = {**farm.env, "BKF_TLS_CA": farm.outputs["caCert"], "BKF_TLS_CERT": farm.outputs["clientCert"],
            "BKF_TLS_KEY": farm.outputs["clientKey"], **(env or {})}
    return run(["bash", str(script), *args], env=full)


def build_amd64(farm: Farm, bust: str, env: dict[str, str] | None = None) -> None:
    ctx = sample_context(farm.dir / "sample")
    out = farm.dir / "out"
    shutil.rmtree(out, ignore_errors=True)
    farm.build(ctx, "--platform", "linux/amd64", "--build-arg", f"BUST={bust}", "--output", f"type=local,dest={out}",
               env=env)
    assert f"bust={bust}" in (out / "built-on").read_text()


@pytest.fixture(scope="module")
def farm(scale_farm: Farm) -> Farm:
    return scale_farm


def test_the_program_made_a_three_node_farm_whose_builder_has_every_node(farm: Farm) -> None:
    assert [n["name"] for n in farm.outputs["nodes"]] == ["amd64-1", "arm64-1", "amd64-2"]
    assert "rank()" in farm.outputs["buildxCreateScript"]
    # without a key the program's builder (pulumi up ran the script) holds all three, as before
    ls = run(["docker-buildx", "inspect", BUILDER], env=farm.env).stdout
    assert [m for m in re.findall(r"^Name:\s+(\S+)", ls, re.M) if m != BUILDER] == ["amd64-1", "arm64-1", "amd64-2"]


def test_two_keys_build_on_the_two_amd64_nodes_their_hash_picks(farm: Farm) -> None:
    for node, key in keys_for_each_amd64_node().items():
        r = create_builder(farm, "--key", key)
        assert f"builder {BUILDER} ready: {node}=linux/amd64 arm64-1=linux/arm64" in r.stdout, r.stdout
        bust = f"affinity-{node}-{secrets.token_hex(4)}"
        build_amd64(farm, bust)
        assert ran_on(farm, bust) == [node]
        # the same key again: the same node (its cache stays warm)
        create_builder(farm, "--key", key)
        bust2 = f"again-{secrets.token_hex(4)}"
        build_amd64(farm, bust2)
        assert ran_on(farm, bust2) == [node]


def status(farm: Farm) -> tuple[int, list[dict[str, Any]], str]:
    out = farm.dir / "outputs.json"
    out.write_text(json.dumps(farm.outputs))
    env = {**farm.env, "PYTHONPATH": str(ROOT)}
    js = run([sys.executable, "-m", "components.status", "--outputs", str(out), "--json"], env=env, check=False)
    table = run([sys.executable, "-m", "components.status", "--outputs", str(out)], env=env, check=False)
    print("\n" + table.stdout + table.stderr)
    assert js.returncode == table.returncode
    return js.returncode, json.loads(js.stdout), table.stdout


def test_status_agrees_with_what_each_daemon_reports(farm: Farm) -> None:
    rc, nodes, table = status(farm)
    assert rc == 0, nodes
    assert [n["name"] for n in nodes] == ["amd64-1", "arm64-1", "amd64-2"]
    for n in nodes:
        name = n["name"]
        info = json.loads(farm.buildctl(name, "debug", "info", "--format", "{{json .}}").stdout)
        workers = json.loads(farm.buildctl(name, "debug", "workers", "--format", "{{json .}}").stdout)
        du = json.loads(farm.buildctl(name, "du", "--format", "{{json .}}").stdout) or []
        hist = farm.history(name)
        assert n["reachable"] and n["error"] == ""
        assert n["version"] == info["buildkitVersion"]["version"] == "v0.32.2"
        assert n["platforms"][0] == n["platform"]
        assert len(n["platforms"]) == len(workers[0]["platforms"])
        assert n["cache_bytes"] == sum(r["size"] for r in du)
        assert n["gc_limit_bytes"] == next(r for r in workers[0]["gcPolicy"] if r["all"])["maxUsedSpace"]
        assert n["running"] == 0
        done = [r["CompletedAt"]["seconds"] for r in hist if r.get("CompletedAt")]
        if name == "arm64-1":
            assert done == [] and n["last_build"] is None  # only amd64 builds ran
        else:
            assert n["last_build"] is not None
            assert abs(_epoch(n["last_build"]) - max(done)) <= 1
        served = run(["bash", "-c", f"openssl s_client -connect {n['endpoint'][6:]} </dev/null 2>/dev/null |"
                                    " openssl x509 -noout -enddate -dateopt iso_8601"]).stdout
        assert served.strip().split("=")[1].replace(" ", "T") == n["cert_expiry"], (served, n["cert_expiry"])
        assert re.search(rf"^{name}\s+{n['platform']}\s+up\s+v0\.32\.2", table, re.M), table


def _epoch(ts: str) -> int:
    return int(dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp())


def test_a_stopped_amd64_node_sends_its_keys_to_the_other(farm: Farm) -> None:
    keys = keys_for_each_amd64_node()
    farm.hosts.ssh(farm.host("amd64-2"), "/opt/buildkit-farm/bkf-node.sh stop")
    try:
        r = create_builder(farm, "--key", keys["amd64-2"])
        assert "affinity: skipping amd64-2" in r.stderr, r.stderr
        assert f"builder {BUILDER} ready: amd64-1=linux/amd64 arm64-1=linux/arm64" in r.stdout, r.stdout
        bust = f"failover-{secrets.token_hex(4)}"
        build_amd64(farm, bust)
        # (amd64-2 cannot be asked while it is down: its history is checked after it is back)
        assert any(x["FrontendAttrs"].get("build-arg:BUST") == bust for x in farm.history("amd64-1"))
        # status names the down node and its real error
        rc, nodes, table = status(farm)
        assert rc == 1
        down = next(n for n in nodes if n["name"] == "amd64-2")
        assert not down["reachable"] and re.search(r"connection refused", down["error"]), down
        assert re.search(r"^amd64-2\s+linux/amd64\s+DOWN", table, re.M) and "connection refused" in table
    finally:
        farm.hosts.ssh(farm.host("amd64-2"), "/opt/buildkit-farm/bkf-node.sh start")
    # back up: the key returns to its own node
    assert ran_on(farm, bust) == ["amd64-1"]
    r = create_builder(farm, "--key", keys["amd64-2"])
    assert "ready: amd64-2=linux/amd64" in r.stdout


def colliding_keys() -> tuple[str, str, str]:
    """(owner, key A, key B): the first two keys whose rendezvous order puts the same amd64 node first."""
    seen: dict[str, str] = {}
    for i in range(100):
        k = f"acme/repo-{i}"
        owner = rank(k, AMD)[0]
        if owner in seen:
            return owner, seen[owner], k
        seen[owner] = k
    raise AssertionError("no two keys collide")


def running_on(farm: Farm, node: str) -> int:
    return sum(not r.get("CompletedAt") for r in farm.history(node))


def wait_running(farm: Farm, node: str, want: int) -> int:
    """Poll the node's history until it runs `want` builds (bounded); the count seen last."""
    deadline = time.monotonic() + 120
    n = running_on(farm, node)
    while n != want and time.monotonic() < deadline:
        time.sleep(1)
        n = running_on(farm, node)
    return n


def test_bounded_loads_spread_colliding_keys_only_when_their_owner_is_full(farm: Farm) -> None:
    """Two keys with the same owner (issue 21 item 5). Two amd64 nodes, c = 1.25 (the default), the
    owner running one long build of its own (the load) and the other node none:

    - one at a time: L = 1, bound = ceil(1.25 x 2 / 2) = 2; the owner runs 1 < 2, so each key in
      turn stays on its owner (each build done before the next key's create script runs);
    - concurrently: key A's create script sees L = 1 and stays home, and its build (held running)
      makes the owner run 2; key B's script then sees L = 2, bound = ceil(1.25 x 3 / 2) = 2, the
      owner at 2 is full, and B goes to the other node.
    Each key's job has its own BUILDX_CONFIG (two CI machines), and each build is found in the
    history of the daemon it ran on."""
    owner, key_a, key_b = colliding_keys()
    other = next(n for n in AMD if n != owner)
    ctx = farm.dir / "held"
    ctx.mkdir(exist_ok=True)
    run(["bash", str(ROOT / "local" / "rootfs.sh"), str(ctx)])
    (ctx / "Dockerfile").write_text("FROM scratch\nADD rootfs-amd64.tar /\nARG BUST\nRUN sleep 300 && echo $BUST\n")
    held: list[subprocess.Popen[bytes]] = []

    def job(key: str, tag: str) -> tuple[dict[str, str], str]:
        env = {"BUILDX_CONFIG": str(farm.dir / f"bx-{tag}")}
        out = create_builder(farm, "--key", key, env=env).stdout
        print(f"\n{tag} ({key}):\n{out}")
        return env, out

    try:
        # the owner's own load: one long build straight on its daemon
        held.append(subprocess.Popen(
            [*farm.buildctl_argv(owner), "build", "--frontend", "dockerfile.v0", "--local", f"context={ctx}",
             "--local", f"dockerfile={ctx}", "--opt", f"build-arg:BUST=load-{secrets.token_hex(4)}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        assert wait_running(farm, owner, 1) == 1

        # one at a time: both stay on the owner
        for tag, key in (("alone-a", key_a), ("alone-b", key_b)):
            env, _ = job(key, tag)
            bust = f"alone-{secrets.token_hex(4)}"
            build_amd64(farm, bust, env)
            assert ran_on(farm, bust) == [owner], (key, bust)

        # concurrently: A stays (and stays running), B is sent to the other node
        env_a, out_a = job(key_a, "together-a")
        assert f"ready: {owner}=linux/amd64" in out_a, out_a
        held.append(subprocess.Popen(
            ["docker-buildx", "build", "--builder", BUILDER, "--platform", "linux/amd64", "--build-arg",
             f"BUST=held-{secrets.token_hex(4)}", "--output", "type=cacheonly", str(ctx)],
            env={**farm.env, **env_a}, cwd=farm.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        assert wait_running(farm, owner, 2) == 2, "key A's build did not reach its owner"
        assert running_on(farm, other) == 0
        env_b, out_b = job(key_b, "together-b")
        loads = " ".join(f"{n}={2 if n == owner else 0}" for n in ("amd64-1", "amd64-2"))
        assert f"load: running builds {loads}" in out_b, out_b
        assert f"affinity: key {key_b} orders linux/amd64 as {other} {owner}" in out_b, out_b
        bust = f"together-{secrets.token_hex(4)}"
        build_amd64(farm, bust, env_b)
        assert ran_on(farm, bust) == [other]
    finally:
        for p in held:
            p.kill()
            p.wait()
    # the cancelled builds end: nothing left running for the tests after this one
    assert wait_running(farm, owner, 0) == 0


def test_a_silent_amd64_node_costs_the_probe_bound_once_and_its_keys_go_to_the_other(farm: Farm) -> None:
    keys = keys_for_each_amd64_node()
    ep = farm.node("amd64-2")["endpoint"]
    bound = 10  # builder.probeTimeoutSeconds' default (the farm's config does not set it)
    assert f"probe_timeout=${{BKF_PROBE_TIMEOUT:-{bound}}}" in farm.outputs["buildxCreateScript"]
    port = int(ep.rsplit(":", 1)[1])
    with farm.hosts.packets_dropped(farm.host("amd64-2"), port):
        # silence, not a refusal: buildctl's own dial gets nothing back
        silent = farm.buildctl("amd64-2", "--timeout", "3", "debug", "workers", check=False)
        assert silent.returncode != 0 and "refused" not in silent.stderr, silent.stderr
        t0 = time.monotonic()
        r = create_builder(farm, "--key", keys["amd64-2"])
        took = time.monotonic() - t0
        # the bound cut the probe (without it buildx waits its own timeouts and then buildctl is asked)
        assert f"probe of node amd64-2 ({ep}) timed out after {bound}s (the bound: builder.probeTimeoutSeconds" \
            in r.stderr, r.stderr
        assert "affinity: skipping amd64-2" in r.stderr, r.stderr
        assert f"builder {BUILDER} ready: amd64-1=linux/amd64 arm64-1=linux/arm64" in r.stdout, r.stdout
        bust = f"silent-{secrets.token_hex(4)}"
        build_amd64(farm, bust)
        assert any(x["FrontendAttrs"].get("build-arg:BUST") == bust for x in farm.history("amd64-1"))
    # answering again: the key returns to its own node (and the build above is not in its history)
    assert ran_on(farm, bust) == ["amd64-1"]
    t1 = time.monotonic()
    r = create_builder(farm, "--key", keys["amd64-2"])
    healthy = time.monotonic() - t1
    assert "ready: amd64-2=linux/amd64" in r.stdout and "timed out" not in r.stderr
    print(f"\nfailover past a silent node: the create script with --key took {took:.1f} s with amd64-2 dropping "
          f"packets (probe bound {bound} s), {healthy:.1f} s with it answering")


def test_idle_stop_stops_an_idle_node_and_leaves_a_busy_one_running(farm: Farm) -> None:
    """idleStop on for the running farm (1 minute, checked every 5 s: the smallest the config takes; here
    the "stop" is the daemon's stop): a long build keeps amd64-1 up through three checks past its own
    idle limit (each would have stopped an idle node) while amd64-2 goes idle and stops; then it is woken."""
    checks = 3
    cfg = farm.stack.read_config()
    cfg["buildkit-farm:idleStop"] = {"afterMinutes": 1, "checkSeconds": 5,
                                     "command": "/opt/buildkit-farm/bkf-node.sh stop"}
    farm.stack.write_config(cfg)
    farm.up()
    enabled = time.monotonic()
    for node in HOSTS.values():
        assert any("bkf-idle.sh loop" in p for p in farm.hosts.processes(farm.host(node))), node
    loop_pid = int(farm.hosts.ssh(farm.host("amd64-1"), "cat /run/buildkit/bkf-idle.pid").stdout)
    # amd64-1's idle log as its loop sees it (the host's own /var/log, through the loop's root)
    busy_log = Path(f"/proc/{loop_pid}/root{IDLE_LOG}")

    ctx = farm.dir / "slow"
    ctx.mkdir(exist_ok=True)
    run(["bash", str(ROOT / "local" / "rootfs.sh"), str(ctx)])
    # (longer than the test waits: it is killed once the checks are counted)
    (ctx / "Dockerfile").write_text("FROM scratch\nADD rootfs-amd64.tar /\nARG BUST\nRUN sleep 300 && echo $BUST\n")
    busy = subprocess.Popen(
        [*farm.buildctl_argv("amd64-1"), "build", "--frontend", "dockerfile.v0", "--local", f"context={ctx}",
         "--local", f"dockerfile={ctx}", "--opt", f"build-arg:BUST=busy-{secrets.token_hex(4)}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # amd64-1's idle clock: from its first check after enable (written then), with a limit of 60 s
        since = int(farm.hosts.ssh(farm.host("amd64-1"), "sleep 6; cat /run/buildkit/bkf-idle.since").stdout)
        seen: set[int] = set()
        past_limit: list[float] = []
        stopped_after = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and (stopped_after is None or len(past_limit) < checks):
            judged = busy_log.read_text() if busy_log.exists() else ""
            assert "no build for" not in judged, f"amd64-1 was judged idle with its build in flight:\n{judged}"
            if stopped_after is None and not answers(farm, "amd64-2"):
                stopped_after = time.monotonic() - enabled
            # the idle loop sleeps checkSeconds right after each check: a new sleep, a check just done
            for started in sorted(children_started(loop_pid, "sleep", seen)):
                # (2 s of margin: the check reads its clock just before its sleep starts; boot time is whole seconds)
                if started - since >= 60 + 2:
                    # that check found amd64-1 past its limit, so only its build in flight kept it up
                    assert answers(farm, "amd64-1"), f"amd64-1 stopped {started - since:.0f} s into its idle clock"
                    assert busy.poll() is None
                    assert any(not r.get("CompletedAt") for r in farm.history("amd64-1"))
                    past_limit.append(started)
            time.sleep(1)
        log = farm.hosts.ssh(farm.host("amd64-2"), "cat /var/log/buildkit-farm/idle.log").stdout
        assert stopped_after is not None, f"the idle node was not stopped; its idle log:\n{log}"
        print(f"\nidle stop: amd64-2 stopped {stopped_after:.0f} s after idleStop was on (limit 60 s, every 5 s); "
              f"busy amd64-1 still up after {len(past_limit)} checks past its own limit, the last "
              f"{past_limit[-1] - since - 60 if past_limit else 0:.0f} s past it")
        assert not answers(farm, "amd64-2")
        assert re.search(r"bkf-idle\[amd64-2\]: no build for \d+s \(limit 60s\)", log), log
        assert len(past_limit) >= checks, (since, past_limit)
        # (the clock those checks were measured against did not restart meanwhile)
        assert int(farm.hosts.ssh(farm.host("amd64-1"), "cat /run/buildkit/bkf-idle.since").stdout) == since
        # the busy node: still up, its build still running, never judged idle
        assert answers(farm, "amd64-1")
        assert busy.poll() is None
        assert "no build for" not in farm.hosts.ssh(farm.host("amd64-1"),
                                                    "cat /var/log/buildkit-farm/idle.log").stdout
    finally:
        busy.kill()
        busy.wait()

    # wake the nodes the key needs (amd64-2, and arm64-1, idle-stopped too) and time it to the first
    # build through the farm: the node side of wake-to-first-build (an instance's boot comes on top)
    key = keys_for_each_amd64_node()["amd64-2"]
    assert not answers(farm, "arm64-1")
    t0 = time.monotonic()
    for node in ("amd64-2", "arm64-1"):
        farm.hosts.ssh(farm.host(node), "/opt/buildkit-farm/bkf-node.sh start")
    t1 = time.monotonic()
    r = create_builder(farm, "--key", key)
    t2 = time.monotonic()
    assert "ready: amd64-2=linux/amd64" in r.stdout, r.stdout
    bust = f"woken-{secrets.token_hex(4)}"
    build_amd64(farm, bust)
    t3 = time.monotonic()
    print(f"wake (node side): two daemons started {t1 - t0:.2f} s, create script with --key {t2 - t1:.2f} s, "
          f"first build {t3 - t2:.2f} s, total {t3 - t0:.2f} s")
    # (arm64-1 is idle-stopped by now: ask the amd64 nodes)
    assert [n for n in AMD if any(x["FrontendAttrs"].get("build-arg:BUST") == bust for x in farm.history(n))] \
        == ["amd64-2"]
    # a woken node gets a fresh idle clock: two checks later it is still up
    time.sleep(12)
    assert answers(farm, "amd64-2")
