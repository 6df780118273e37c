"""The create script waits for booting nodes (run for real against a stand-in buildx and buildctl)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.builder.readiness import Readiness, aws_boot_log
from components.builder.scripts import BuilderNode, render_create_script
from components.config import ConfigError, parse_config
from tests.unit import mockrt

NODES = [BuilderNode("amd64-1", "linux/amd64", "tcp://10.0.0.1:1234", "10.0.0.1"),
         BuilderNode("arm64-1", "linux/arm64", "tcp://10.0.0.2:1234", "10.0.0.2")]
SPARE = [*NODES, BuilderNode("amd64-2", "linux/amd64", "tcp://10.0.0.3:1234", "10.0.0.3")]
REFUSED = "dial tcp {ip}:1234: connect: connection refused"
BOOT_LOG = aws_boot_log("us-east-1", "i-0abc1234")


def run(tmp: Path, nodes: list[BuilderNode], ready: Readiness | None, up_after: dict[str, int],
        *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The script with a buildx whose node N answers from its up_after[N]-th probe on (0: never)
    and a buildctl that reports what a closed port reports."""
    bin_ = tmp / "bin"
    bin_.mkdir(exist_ok=True)
    (bin_ / "buildx").write_text(
        '#!/bin/bash\necho "$@" >> "$BX_LOG"\n'
        '# a node in $BX_SILENT drops packets: buildx waits 20 s on it (the probe bound cuts that)\n'
        'case $1:" ${BX_SILENT:-} " in create:*" ${3#probe-} "*|inspect:*" ${3#probe-} "*) sleep 20;; esac\n'
        'if [ "$1 $2" = "inspect --bootstrap" ] && [ "${3#probe-}" != "$3" ]; then\n'
        '  n=${3#probe-}; c=$(( $(cat "$BX_DIR/$n" 2>/dev/null || echo 0) + 1 )); echo $c > "$BX_DIR/$n"\n'
        '  up=$(sed -n "s/^$n=//p" "$BX_UP")\n'
        '  if [ "${up:-0}" = 0 ] || [ "$c" -lt "$up" ]; then echo "context deadline exceeded"; exit 1; fi\n'
        '  case $n in amd64-*) echo "Platforms: linux/amd64, linux/386";; arm64-*) echo "Platforms: linux/arm64";;'
        ' esac\n'
        'fi\nexit 0\n')
    (bin_ / "buildctl").write_text(
        '#!/bin/bash\nwhile [ "$1" != --addr ]; do shift; done; ip=${2#tcp://}; ip=${ip%:*}\n'
        '# a node in $BX_SILENT is silent to buildctl too\n'
        'case " ${BX_SILENT_EPS:-} " in *" $2 "*) exec sleep 30;; esac\n'
        f'echo "error: {REFUSED.replace("{ip}", "$ip")}" >&2; exit 1\n')
    for f in ("buildx", "buildctl"):
        (bin_ / f).chmod(0o755)
    (tmp / "up").write_text("".join(f"{n}={c}\n" for n, c in up_after.items()))
    (tmp / "count").mkdir(exist_ok=True)
    script = tmp / "create.sh"
    script.write_text(render_create_script("bkf", nodes, buildx=str(bin_ / "buildx"), ready=ready))
    full_env = {"PATH": f"{bin_}:/usr/bin:/bin", "HOME": str(tmp), "BX_LOG": str(tmp / "log"),
                "BX_UP": str(tmp / "up"), "BX_DIR": str(tmp / "count"), "BUILDX_CONFIG": str(tmp / "bx"),
                "BKF_TLS_CA": "CA", "BKF_TLS_CERT": "CERT", "BKF_TLS_KEY": "KEY",
                "BX_SILENT_EPS": " ".join(n.endpoint for n in nodes if n.name in env.get("BX_SILENT", "").split()),
                **env}
    return subprocess.run(["bash", str(script), *args], env=full_env, capture_output=True, text=True, timeout=120)


def log(tmp: Path) -> list[str]:
    return (tmp / "log").read_text().splitlines()


def test_a_node_that_answers_on_its_third_probe_joins_after_progress_lines(tmp_path: Path) -> None:
    r = run(tmp_path, NODES, Readiness(60, {"amd64-1": BOOT_LOG}, interval_seconds=1), {"amd64-1": 3, "arm64-1": 1})
    assert r.returncode == 0, r.stderr
    waiting = [line for line in r.stdout.splitlines() if line.startswith("preflight: waiting")]
    assert len(waiting) == 2
    # one line per round: the node, its endpoint, time waited of the bound, buildctl's error (not buildx's)
    assert waiting[0].startswith("preflight: waiting for node amd64-1 (tcp://10.0.0.1:1234) 0s/60s: error: "
                                 + REFUSED.format(ip="10.0.0.1"))
    assert "preflight: node amd64-1 (tcp://10.0.0.1:1234) is up and builds linux/amd64" in r.stdout
    assert "builder bkf ready: amd64-1=linux/amd64 arm64-1=linux/arm64" in r.stdout
    assert log(tmp_path).count("inspect --bootstrap probe-amd64-1") == 3


def test_a_node_that_never_answers_fails_within_the_bound_naming_its_error_and_boot_log(tmp_path: Path) -> None:
    r = run(tmp_path, NODES, Readiness(3, {"amd64-1": BOOT_LOG}, interval_seconds=1),
               {"amd64-1": 0, "arm64-1": 1})
    assert r.returncode != 0
    # within the bound: a round sleeps at least a second of what is left, so at most 3 rounds wait
    # (at 0, 1 and 2 s) before the verdict, however slow the machine (no clock asserted)
    waiting = [line for line in r.stdout.splitlines() if line.startswith("preflight: waiting for node amd64-1")]
    assert 1 <= len(waiting) <= 3, r.stdout
    assert re.search(r"preflight: node amd64-1 \(tcp://10\.0\.0\.1:1234\) is not ready after \d+s \(bound 3s\); "
                     r"last error: error: " + re.escape(REFUSED.format(ip="10.0.0.1")), r.stderr), r.stderr
    assert ("preflight: boot log of amd64-1: aws ec2 get-console-output --region us-east-1 --instance-id "
            "i-0abc1234 --latest") in r.stderr
    assert "rm bkf" not in log(tmp_path)


def test_a_silent_node_is_awaited_one_probe_bound_per_round_and_named(tmp_path: Path) -> None:
    # amd64-1 drops packets until the end: each round's probe of it is cut by the probe bound (1 s
    # here), and that is the last error the waiting lines and the verdict give
    r = run(tmp_path, NODES, Readiness(3, interval_seconds=1), {"amd64-1": 0, "arm64-1": 1},
               BX_SILENT="amd64-1", BKF_PROBE_TIMEOUT="1")
    assert r.returncode != 0
    cut = "probe of node amd64-1 (tcp://10.0.0.1:1234) timed out after 1s (the bound: builder.probeTimeoutSeconds"
    waiting = [line for line in r.stdout.splitlines() if line.startswith("preflight: waiting for node amd64-1")]
    assert waiting and all(cut in line for line in waiting), r.stdout
    assert re.search(r"preflight: node amd64-1 \(tcp://10\.0\.0\.1:1234\) is not ready after \d+s \(bound 3s\); "
                     r"last error: " + re.escape(cut), r.stderr), r.stderr


def test_the_environment_overrides_the_rendered_bound(tmp_path: Path) -> None:
    r = run(tmp_path, NODES, Readiness(900), {"amd64-1": 0, "arm64-1": 1},
                  BKF_READY_TIMEOUT="0", BKF_READY_INTERVAL="1")
    assert r.returncode != 0
    # the rendered 900 s did not apply: one probe, no round waited
    assert "is not ready after 0s (bound 0s)" in r.stderr
    assert "preflight: waiting" not in r.stdout


def test_a_wrong_platform_fails_at_once(tmp_path: Path) -> None:
    wrong = [BuilderNode("arm64-1", "linux/amd64", "tcp://10.0.0.2:1234", "10.0.0.2")]
    r = run(tmp_path, wrong, Readiness(60, interval_seconds=1), {"arm64-1": 1})
    assert r.returncode != 0
    assert log(tmp_path).count("inspect --bootstrap probe-arm64-1") == 1  # no second probe
    assert "should build linux/amd64 natively, but its daemon reports linux/arm64 first" in r.stderr
    assert "waiting" not in r.stdout


def test_a_key_waits_for_the_first_node_of_its_order_that_answers(tmp_path: Path) -> None:
    # the key orders amd64 as amd64-1, amd64-2 (see test_buildx); the second answers first
    order = render_create_script("bkf", SPARE)  # the key/failover script: no wait without a bound
    assert "await_any" not in order
    r = run(tmp_path, SPARE, Readiness(60, interval_seconds=1), {"amd64-1": 0, "amd64-2": 2, "arm64-1": 1},
               "--key", "acme/app")
    assert r.returncode == 0, r.stderr
    assert "preflight: node amd64-2 (tcp://10.0.0.3:1234) is up" in r.stdout
    assert sum(line.startswith("preflight: waiting for node amd64-") for line in r.stdout.splitlines()) >= 2


def test_without_a_key_every_spare_node_is_awaited(tmp_path: Path) -> None:
    r = run(tmp_path, SPARE, Readiness(2, interval_seconds=1), {"amd64-1": 1, "amd64-2": 0, "arm64-1": 1})
    assert r.returncode != 0
    assert "preflight: node amd64-2 (tcp://10.0.0.3:1234) is not ready after" in r.stderr


def test_no_bound_renders_todays_script_byte_for_byte() -> None:
    for nodes in (NODES, SPARE):
        assert render_create_script("bkf", nodes, ready=Readiness(0, {"amd64-1": BOOT_LOG})) == \
            render_create_script("bkf", nodes)


def test_the_waiting_scripts_pass_shellcheck(tmp_path: Path) -> None:
    assert shutil.which("shellcheck"), "shellcheck missing: run toolchain/bootstrap.sh"
    for i, nodes in enumerate((NODES, SPARE)):
        p = tmp_path / f"create{i}.sh"
        p.write_text(render_create_script("bkf", nodes, ready=Readiness(900, {"amd64-1": BOOT_LOG})))
        subprocess.run(["shellcheck", str(p)], check=True)


# --- config and program
def raw(backend: str, **builder: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": backend, "nodes": [{"name": "amd64-1", "platform": "linux/amd64",
                                                            **({"host": "h.example"} if backend == "ssh" else {})}],
                           "builder": builder}
    if backend == "ssh":
        out["ssh"] = {"privateKeyPath": "/k"}
    else:
        out["allowedCidrs"] = ["10.0.0.0/16"]
    return out


@pytest.mark.parametrize(("backend", "want"), [("aws", 900), ("ssh", 0), ("kubernetes", 0)])
def test_the_default_bound_is_the_backends(backend: str, want: int) -> None:
    assert parse_config(raw(backend), aws_region="us-east-1").ready_timeout() == want
    assert parse_config(raw(backend, readyTimeoutSeconds=120), aws_region="us-east-1").ready_timeout() == 120


@pytest.mark.parametrize("bad", [-1, 3601, "soon"])
def test_a_bad_bound_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(raw("aws", readyTimeoutSeconds=bad), aws_region="us-east-1")
    assert any(p.startswith(f"builder.readyTimeoutSeconds: {bad!r}") for p in e.value.problems), e.value.problems


@pytest.mark.parametrize("backend", ["aws", "ssh", "kubernetes"])
def test_the_probe_bound_is_ten_seconds_unless_set(backend: str) -> None:
    assert parse_config(raw(backend), aws_region="us-east-1").builder.probe_timeout_seconds == 10
    assert parse_config(raw(backend, probeTimeoutSeconds=3), aws_region="us-east-1").builder.probe_timeout_seconds == 3


@pytest.mark.parametrize("bad", [0, -1, 601, "soon", 2.5])
def test_a_bad_probe_bound_is_a_config_error_naming_the_key_and_the_range(bad: object) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(raw("ssh", probeTimeoutSeconds=bad), aws_region="us-east-1")
    assert any(p.startswith(f"builder.probeTimeoutSeconds: {bad!r}") and "an integer from 1 to 600 seconds" in p
               for p in e.value.problems), e.value.problems


def test_an_aws_stack_waits_and_names_each_instances_boot_log() -> None:
    run_ = mockrt.run_main(mockrt.stack_config(mockrt.ROOT / "Pulumi.dev.yaml"))
    script = run_.values["buildxCreateScript"]
    assert "ready_timeout=${BKF_READY_TIMEOUT:-900}" in script
    for node in ("arm64-1", "amd64-1"):
        # the mocks give each resource the id <name>-id
        assert f"--instance-id {node}-instance-id" in script
        assert f'await_any {node} || fail "no node of linux/{node[:5]} passed the preflight within' in script
    assert run_.named("builder-buildx").inputs["create"] == script


def test_the_program_renders_the_configured_probe_bound() -> None:
    cfg = mockrt.stack_config(mockrt.ROOT / "Pulumi.dev.yaml")
    assert "probe_timeout=${BKF_PROBE_TIMEOUT:-10}" in mockrt.run_main(cfg).values["buildxCreateScript"]
    run_ = mockrt.run_main(mockrt.with_section(cfg, "builder", probeTimeoutSeconds=4))
    assert "probe_timeout=${BKF_PROBE_TIMEOUT:-4}" in run_.values["buildxCreateScript"]
    assert run_.named("builder-buildx").inputs["create"] == run_.values["buildxCreateScript"]
