"""The EC2 side of waking the farm, against moto's server (127.0.0.1) with the real AWS CLI.

Both come pinned in .aws-emu-venv (toolchain/steps/aws_emu_venv.sh). The create script that a farm
with idleStop on AWS exports is run with a fake buildx whose nodes answer only while their
emulated instance is running, so the EC2 calls, their order and their scope are real; the boot of
an instance is not (moto moves to running at once). The printed times are the API side only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from components.backends.aws.iam import ci_wake_policy
from components.builder.affinity import rank
from components.builder.scripts import BuilderNode, render_create_script
from components.builder.wake import Wake
from harness.hosts import ROOT, run

pytestmark = pytest.mark.e2e

VENV = ROOT / ".aws-emu-venv" / "bin"
REGION = "us-east-1"
NODES = [BuilderNode("amd64-1", "linux/amd64", "tcp://10.0.0.1:1234", "10.0.0.1"),
         BuilderNode("arm64-1", "linux/arm64", "tcp://10.0.0.2:1234", "10.0.0.2"),
         BuilderNode("amd64-2", "linux/amd64", "tcp://10.0.0.3:1234", "10.0.0.3")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def moto(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """moto's server on 127.0.0.1 (stopped after the test, pass or fail) and an env for the AWS CLI."""
    if not (VENV / "moto_server").exists() or not (VENV / "aws").exists():
        pytest.fail("no .aws-emu-venv: run toolchain/bootstrap.sh")
    port = free_port()
    extra = getattr(request, "param", {})
    log = (tmp_path / "moto.log").open("w")
    proc = subprocess.Popen([str(VENV / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **extra})
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield {**os.environ, "PATH": f"{VENV}:{os.environ['PATH']}", "AWS_ACCESS_KEY_ID": "test",
               "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": REGION,
               "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "HOME": str(tmp_path)}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def aws(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["aws", *args], env=env, check=check, timeout=120)


def instances(env: dict[str, str], n: int) -> list[str]:
    ami = aws(env, "ec2", "describe-images", "--owners", "amazon", "--query", "Images[0].ImageId",
              "--output", "text").stdout.strip()
    return aws(env, "ec2", "run-instances", "--image-id", ami, "--count", str(n), "--instance-type", "c7i.large",
               "--query", "Instances[].InstanceId", "--output", "text").stdout.split()


def states(env: dict[str, str], ids: list[str]) -> list[str]:
    out = aws(env, "ec2", "describe-instances", "--instance-ids", *ids, "--query",
              "Reservations[].Instances[].[InstanceId,State.Name]", "--output", "text").stdout
    by_id = dict(line.split() for line in out.splitlines())
    return [by_id[i] for i in ids]


def fake_buildx(tmp: Path, ids: dict[str, str]) -> Path:
    """Nodes answer the preflight only while their instance runs (asked of the emulator)."""
    p = tmp / "buildx"
    p.write_text(f"""#!/bin/bash
if [ "$1 $2" = "inspect --bootstrap" ]; then
  n=${{3#probe-}}
  case $n in {" ".join(f"{n}) i={i};;" for n, i in ids.items())} *) exit 0;; esac
  s=$(aws ec2 describe-instances --instance-ids "$i" --query 'Reservations[0].Instances[0].State.Name' --output text)
  [ "$s" = running ] || {{ echo "context deadline exceeded"; exit 1; }}
  case $n in amd64-*) echo "Platforms: linux/amd64";; *) echo "Platforms: linux/arm64";; esac
fi
exit 0
""")
    p.chmod(0o755)
    return p


def test_the_create_script_wakes_exactly_the_nodes_it_needs(moto: dict[str, str], tmp_path: Path) -> None:
    farm_ids = instances(moto, 3)
    foreign = instances(moto, 1)  # not the farm's: must stay stopped
    ids = dict(zip([n.name for n in NODES], farm_ids, strict=True))
    aws(moto, "ec2", "stop-instances", "--instance-ids", *farm_ids, *foreign)
    assert set(states(moto, farm_ids + foreign)) == {"stopped"}
    script = tmp_path / "create.sh"
    script.write_text(render_create_script("bkf", NODES, buildx=str(fake_buildx(tmp_path, ids)),
                                           wake=Wake(REGION, ids)))
    env = {**moto, "BKF_TLS_CA": "CA", "BKF_TLS_CERT": "C", "BKF_TLS_KEY": "K", "BUILDX_CONFIG": str(tmp_path / "bx")}
    key = next(f"acme/repo-{i}" for i in range(100) if rank(f"acme/repo-{i}", ["amd64-1", "amd64-2"])[0] == "amd64-2")

    t0 = time.monotonic()
    r = run(["bash", str(script), "--key", key], env=env)
    took = time.monotonic() - t0
    print(f"\nwake against the emulator (real AWS CLI): create script with --key, two stopped nodes woken, "
          f"{took:.2f} s in all")
    print("\n".join(x for x in r.stdout.splitlines() if x.startswith("wake:")))
    assert states(moto, [ids["amd64-2"], ids["arm64-1"], ids["amd64-1"], *foreign]) == [
        "running", "running", "stopped", "stopped"]
    assert "builder bkf ready: amd64-2=linux/amd64 arm64-1=linux/arm64" in r.stdout

    # without a key every farm node is needed: the one still stopped is woken, the foreign one is not
    t0 = time.monotonic()
    r = run(["bash", str(script)], env=env)
    print(f"create script without a key, one stopped node woken: {time.monotonic() - t0:.2f} s")
    assert states(moto, [*farm_ids, *foreign]) == ["running", "running", "running", "stopped"]
    assert f"wake: starting {ids['amd64-1']}" in r.stdout

    # the bare API calls, as the script makes them (CLI start-up included)
    aws(moto, "ec2", "stop-instances", "--instance-ids", ids["amd64-1"])
    t0 = time.monotonic()
    aws(moto, "ec2", "start-instances", "--instance-ids", ids["amd64-1"])
    t1 = time.monotonic()
    aws(moto, "ec2", "wait", "instance-running", "--instance-ids", ids["amd64-1"])
    print(f"aws ec2 start-instances {t1 - t0:.2f} s, wait instance-running {time.monotonic() - t1:.2f} s")


# IAM checks on: moto enforces policies after this many unauthenticated set-up calls
SETUP_CALLS = 6


@pytest.mark.parametrize("moto", [{"INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_CALLS)}], indirect=True)
def test_the_exported_ci_policy_allows_describe_and_refuses_stop_and_terminate(moto: dict[str, str],
                                                                               tmp_path: Path) -> None:
    farm_ids = instances(moto, 2)  # 2 calls (describe-images, run-instances)
    aws(moto, "ec2", "stop-instances", "--instance-ids", *farm_ids)  # 3
    aws(moto, "iam", "create-user", "--user-name", "ci")  # 4
    (tmp_path / "policy.json").write_text(ci_wake_policy(REGION, farm_ids))
    aws(moto, "iam", "put-user-policy", "--user-name", "ci", "--policy-name", "wake",
        "--policy-document", f"file://{tmp_path / 'policy.json'}")  # 5
    key = json.loads(aws(moto, "iam", "create-access-key", "--user-name", "ci").stdout)["AccessKey"]  # 6
    ci = {**moto, "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    assert states(ci, farm_ids) == ["stopped", "stopped"]
    for verb in ("stop-instances", "terminate-instances", "reboot-instances"):
        r = aws(ci, "ec2", verb, "--instance-ids", farm_ids[0], check=False)
        assert r.returncode != 0 and "AccessDenied" in r.stderr, (verb, r.stderr)
    r = aws(ci, "ec2", "run-instances", "--image-id", "ami-12345678", check=False)
    assert r.returncode != 0 and "AccessDenied" in r.stderr
    # moto (5.2.5) evaluates EC2 actions against resource "*", not the instance's ARN, so a policy
    # scoped to instance ARNs is refused even for the farm's own instances here: that scoping is
    # checked on the document (tests/unit/test_wake.py), not by the emulator. Printed, not hidden:
    r = aws(ci, "ec2", "start-instances", "--instance-ids", farm_ids[0], check=False)
    print(f"\nmoto, start-instances of a farm instance under the scoped policy: exit {r.returncode}: "
          f"{r.stderr.strip()[-160:]}")
