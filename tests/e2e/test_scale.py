"""Tier 3: several nodes per platform on real hosts: cache affinity by key, failover, farm status.

The three-node farm of tests/e2e/scale_farm.py (amd64-1 on h13, arm64-1 on h14, amd64-2 on h15;
the local farm's shape, stood up by a real `pulumi up`, shared with test_ci_action_farm.py); then
the exported create script is run the way CI runs it, with `--key`, and each build is found in the
history of the daemon it ran on (and only there).
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
from typing import Any

import pytest

from harness.farm import Farm
from harness.hosts import ROOT, run, sample_context
from tests.e2e.scale_farm import AMD, BUILDER, HOSTS, answers, keys_for_each_amd64_node, ran_on

pytestmark = pytest.mark.e2e


def create_builder(farm: Farm, *args: str) -> subprocess.CompletedProcess[str]:
    """The exported create script, run as CI runs it (PEMs in the environment)."""
    script = farm.dir / "create.sh"
    script.write_text(farm.outputs["buildxCreateScript"])
    env = {**farm.env, "BKF_TLS_CA": farm.outputs["caCert"], "BKF_TLS_CERT": farm.outputs["clientCert"],
           "BKF_TLS_KEY": farm.outputs["clientKey"]}
    return run(["bash", str(script), *args], env=env)


def build_amd64(farm: Farm, bust: str) -> None:
    ctx = sample_context(farm.dir / "sample")
    out = farm.dir / "out"
    shutil.rmtree(out, ignore_errors=True)
    farm.build(ctx, "--platform", "linux/amd64", "--build-arg", f"BUST={bust}", "--output", f"type=local,dest={out}")
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


def test_idle_stop_stops_an_idle_node_and_leaves_a_busy_one_running(farm: Farm) -> None:
    """idleStop on for the running farm (1 minute, checked every 5 s; here the "stop" is the daemon's
    stop): a long build keeps amd64-1 up while amd64-2 goes idle and stops; then it is woken."""
    cfg = farm.stack.read_config()
    cfg["buildkit-farm:idleStop"] = {"afterMinutes": 1, "checkSeconds": 5,
                                     "command": "/opt/buildkit-farm/bkf-node.sh stop"}
    farm.stack.write_config(cfg)
    farm.up()
    enabled = time.monotonic()
    for node in HOSTS.values():
        assert any("bkf-idle.sh loop" in p for p in farm.hosts.processes(farm.host(node))), node

    ctx = farm.dir / "slow"
    ctx.mkdir(exist_ok=True)
    run(["bash", str(ROOT / "local" / "rootfs.sh"), str(ctx)])
    (ctx / "Dockerfile").write_text("FROM scratch\nADD rootfs-amd64.tar /\nARG BUST\nRUN sleep 150 && echo $BUST\n")
    busy = subprocess.Popen(
        [*farm.buildctl_argv("amd64-1"), "build", "--frontend", "dockerfile.v0", "--local", f"context={ctx}",
         "--local", f"dockerfile={ctx}", "--opt", f"build-arg:BUST=busy-{secrets.token_hex(4)}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 150
        while answers(farm, "amd64-2") and time.monotonic() < deadline:
            time.sleep(2)
        stopped_after = time.monotonic() - enabled
        print(f"\nidle stop: amd64-2 stopped {stopped_after:.0f} s after idleStop was on (limit 60 s, every 5 s)")
        log = farm.hosts.ssh(farm.host("amd64-2"), "cat /var/log/buildkit-farm/idle.log").stdout
        assert not answers(farm, "amd64-2"), f"the idle node was not stopped; its idle log:\n{log}"
        assert re.search(r"bkf-idle\[amd64-2\]: no build for \d+s \(limit 60s\)", log), log
        # the busy node: still up, its build still running
        assert answers(farm, "amd64-1")
        assert busy.poll() is None
        assert any(not r.get("CompletedAt") for r in farm.history("amd64-1"))
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
