"""Waking stopped AWS nodes (idleStop): the CI policy, the create script's wake step (fake aws CLI
and buildx here; tests/e2e/test_wake_emulator.py runs the real AWS CLI against moto's server)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from components.backends.aws.iam import ci_wake_policy
from components.builder.affinity import rank
from components.builder.scripts import BuilderNode, render_create_script
from components.builder.wake import Wake
from tests.support.standins import fake_ec2
from tests.unit import mockrt
from tests.unit.test_policy import example_config


def test_the_ci_policy_starts_exactly_the_farms_instances_and_describes() -> None:
    doc = json.loads(ci_wake_policy("eu-west-1", ["i-b", "i-a"]))
    actions = sorted(a for s in doc["Statement"] for a in s["Action"])
    assert actions == ["ec2:DescribeInstances", "ec2:StartInstances"]
    start = next(s for s in doc["Statement"] if s["Action"] == ["ec2:StartInstances"])
    assert start["Resource"] == ["arn:aws:ec2:eu-west-1:*:instance/i-a", "arn:aws:ec2:eu-west-1:*:instance/i-b"]
    assert all(s["Effect"] == "Allow" for s in doc["Statement"])


def test_aws_stack_exports_the_policy_and_a_waking_script_only_with_idle_stop(tmp_path: Path) -> None:
    cfg = example_config("dev", tmp_path)
    off = mockrt.run_main(cfg)
    assert "ciWakePolicy" not in off.values
    assert "wake()" not in off.values["buildxCreateScript"] and "rank()" not in off.values["buildxCreateScript"]
    on = mockrt.run_main(mockrt.with_section(cfg, "idleStop", afterMinutes=30))
    ids = [r.name for r in on.of_type("aws:ec2/instance:Instance")]
    assert len(ids) == 2
    policy = json.loads(on.values["ciWakePolicy"])
    start = next(s for s in policy["Statement"] if s["Action"] == ["ec2:StartInstances"])
    assert len(start["Resource"]) == 2 and all(":instance/" in r for r in start["Resource"])
    script = on.values["buildxCreateScript"]
    assert "wake()" in script and "--region eu-west-1" in script
    for n in ("arm64-1", "amd64-1"):
        assert f"iid[{n}]=" in script


NODES = [BuilderNode("amd64-1", "linux/amd64", "tcp://10.0.0.1:1234", "10.0.0.1"),
         BuilderNode("arm64-1", "linux/arm64", "tcp://10.0.0.2:1234", "10.0.0.2"),
         BuilderNode("amd64-2", "linux/amd64", "tcp://10.0.0.3:1234", "10.0.0.3")]
IDS = {"amd64-1": "i-1", "arm64-1": "i-2", "amd64-2": "i-3"}


def fake_world(tmp: Path, stopped: set[str]) -> dict[str, str]:
    """A fake `aws` (state in files) and a fake buildx whose nodes answer only while running."""
    bin_, state = fake_ec2(tmp, IDS, stopped)
    (bin_ / "buildx").write_text(f"""#!/bin/bash
if [ "$1 $2" = "inspect --bootstrap" ]; then
  n=${{3#probe-}}
  case $n in {" ".join(f"{n}) i={i};;" for n, i in IDS.items())} *) exit 0;; esac
  [ "$(cat {state}/$i)" = running ] || {{ echo "context deadline exceeded"; exit 1; }}
  case $n in amd64-*) echo "Platforms: linux/amd64";; *) echo "Platforms: linux/arm64";; esac
fi
[ "$1" = create ] && echo "$*" >> {tmp}/bx.log
exit 0
""")
    for f in ("aws", "buildx"):
        (bin_ / f).chmod(0o755)
    return {"PATH": f"{bin_}:/usr/bin:/bin", "HOME": str(tmp), "BKF_TLS_CA": "CA", "BKF_TLS_CERT": "C",
            "BKF_TLS_KEY": "K", "BUILDX_CONFIG": str(tmp / "bx")}


def run(tmp: Path, stopped: set[str], *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    env = fake_world(tmp, stopped)
    script = tmp / "create.sh"
    script.write_text(render_create_script("bkf", NODES, buildx=str(tmp / "bin" / "buildx"),
                                           wake=Wake("eu-west-1", IDS)))
    r = subprocess.run(["bash", str(script), *args], env=env, capture_output=True, text=True)
    return r, {n: (tmp / "state" / i).read_text().strip() for n, i in IDS.items()}


def test_with_a_key_only_each_platforms_first_node_is_woken(tmp_path: Path) -> None:
    key = next(f"k{i}" for i in range(100) if rank(f"k{i}", ["amd64-1", "amd64-2"])[0] == "amd64-2")
    r, state = run(tmp_path, {"amd64-1", "amd64-2", "arm64-1"}, "--key", key)
    assert r.returncode == 0, r.stderr
    assert state == {"amd64-1": "stopped", "arm64-1": "running", "amd64-2": "running"}
    starts = [x for x in (tmp_path / "aws.log").read_text().splitlines() if x.startswith("ec2 start-instances")]
    assert starts == ["ec2 start-instances --region eu-west-1 --instance-ids i-3 i-2"], starts
    assert "wake: node amd64-2 answers mTLS" in r.stdout
    assert "ready: amd64-2=linux/amd64 arm64-1=linux/arm64" in r.stdout


def test_without_a_key_every_stopped_node_is_woken_and_running_ones_are_left_alone(tmp_path: Path) -> None:
    r, state = run(tmp_path, {"amd64-2"})
    assert r.returncode == 0, r.stderr
    assert set(state.values()) == {"running"}
    starts = [x for x in (tmp_path / "aws.log").read_text().splitlines() if x.startswith("ec2 start-instances")]
    assert starts == ["ec2 start-instances --region eu-west-1 --instance-ids i-3"]


def test_nothing_stopped_means_no_start_call(tmp_path: Path) -> None:
    r, _ = run(tmp_path, set(), "--key", "acme/api")
    assert r.returncode == 0, r.stderr
    assert "start-instances" not in (tmp_path / "aws.log").read_text()
