"""The `bkf` command: each command against stand-in `buildctl`, `aws` and `pulumi` on PATH (the e2e
tier and the lead's live-farm checks dial real daemons), and every user error as one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bkf.app import app
from components import status
from components.builder.scripts import BuilderNode, render_create_script
from components.builder.wake import KubernetesWake, Wake, parse_wake
from tests.support.standins import fake_ec2
from tests.unit.test_status import DU, HIST, INFO, WORKERS

ROOT = Path(__file__).resolve().parents[2]
HISTORY = ROOT / "tests" / "unit" / "fixtures" / "histories" / "node-a.jsonl"
NODES = [BuilderNode("amd64-1", "linux/amd64", "tcp://10.0.0.1:1234", "10.0.0.1"),
         BuilderNode("arm64-1", "linux/arm64", "tcp://10.0.0.2:1234", "10.0.0.2"),
         BuilderNode("amd64-2", "linux/amd64", "tcp://10.0.0.3:1234", "10.0.0.3")]
IDS = {"amd64-1": "i-1", "arm64-1": "i-2", "amd64-2": "i-3"}
WAKE = Wake("eu-west-1", IDS)
KEY = "-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n"


def outputs(wake: Wake | None = WAKE, script: str | None = None) -> dict[str, Any]:
    return {"nodes": [{"name": n.name, "platform": n.platform, "endpoint": n.endpoint, "serverName": n.server_name}
                      for n in NODES],
            "caCert": "CA", "clientCert": "CERT", "clientKey": KEY, "clientCerts": {"ci": "CERT-CI"},
            "clientKeys": {"ci": KEY},
            "buildxCreateScript": script if script is not None else render_create_script("bkf", NODES, wake=wake)}


def world(tmp: Path, monkeypatch: pytest.MonkeyPatch, stopped: set[str], running: frozenset[str] = frozenset(),
          ) -> Path:
    """Stand-in buildctl (a node answers while its instance runs) and aws (instance state in files);
    returns the outputs file."""
    bin_, state = fake_ec2(tmp, IDS, stopped)
    answers = {n.endpoint: IDS[n.name] for n in NODES if n.name not in stopped or n.name in running}
    (tmp / "info.json").write_text(json.dumps(INFO))
    (tmp / "workers.json").write_text(json.dumps(WORKERS))
    (tmp / "du.json").write_text(json.dumps(DU))
    (tmp / "hist.jsonl").write_text("".join(json.dumps(h) + "\n" for h in HIST))
    (bin_ / "buildctl").write_text(f"""#!/bin/bash
echo "$*" >> {tmp}/buildctl.log
addr=$2
case $addr in {" ".join(f"{ep}) i={i};;" for ep, i in answers.items())} *) i=none;; esac
if [ "$i" = none ] || [ "$(cat {state}/$i)" != running ]; then
  echo "dial tcp ${{addr#tcp://}}: connect: connection refused" >&2; exit 1
fi
case "$*" in
  *"debug info"*) cat {tmp}/info.json;;
  *"debug workers"*) cat {tmp}/workers.json;;
  *" du "*) cat {tmp}/du.json;;
  *"debug histories --format json"*) cat {HISTORY};;
  *"debug histories"*) cat {tmp}/hist.jsonl;;
esac
""")
    for f in ("buildctl", "aws"):
        (bin_ / f).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}:/usr/bin:/bin")
    # the served cert is read in a real TLS handshake, which no stand-in gives
    monkeypatch.setattr(status, "served_cert_expiry", lambda *a: "2027-01-01T00:00:00Z")
    out = tmp / "outputs.json"
    out.write_text(json.dumps(outputs()))
    return out


def bkf(*args: str, stdin: str | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=stdin)


def one_line_error(r: Any, code: int = 2) -> str:
    assert r.exit_code == code, (r.exit_code, r.output)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bkf: "), r.stderr
    return str(lines[0])


@pytest.mark.parametrize("wake", [Wake("eu-west-1", IDS), Wake("us-east-2", {"amd64-1": "i-0abc"}),
                                  KubernetesWake("bkf-farm", {"amd64-1": "amd64-1", "arm64-1": "arm64-1",
                                                              "amd64-2": "amd64-2"}),
                                  KubernetesWake("ci", {"amd64-1": "farm-amd64-1"})])
def test_the_wake_data_is_read_back_from_the_script_that_carries_it(wake: Wake | KubernetesWake) -> None:
    assert parse_wake(render_create_script("bkf", NODES, wake=wake)) == wake
    assert parse_wake(render_create_script("bkf", NODES)) is None  # no idle stop: nothing to wake


def test_status_shows_an_idle_stopped_node_as_stopped_and_does_not_fail(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    out = world(tmp_path, monkeypatch, stopped={"amd64-2"})
    r = bkf("status", "--outputs", str(out))
    assert r.exit_code == 0, r.output
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:4]}
    assert rows["amd64-1"][1:4] == ["linux/amd64", "up", "v0.32.2"]
    assert rows["amd64-2"][1:3] == ["linux/amd64", "stopped"]
    assert "amd64-2 (tcp://10.0.0.3:1234): dial tcp 10.0.0.3:1234: connect: connection refused" in r.stdout
    js = json.loads(bkf("status", "--outputs", str(out), "--json").stdout)
    assert [(n["name"], n["state"], n["reachable"]) for n in js] == [
        ("amd64-1", "up", True), ("arm64-1", "up", True), ("amd64-2", "stopped", False)]
    # what the daemon answered, as the pure summary reads it
    daemon = status.summarize(INFO, WORKERS, DU, HIST)
    assert [js[0][k] for k in ("cache_bytes", "gc_limit_bytes", "last_build")] == [
        daemon[k] for k in ("cache_bytes", "gc_limit_bytes", "last_build")]
    # only the silent node's instance is asked about
    assert (tmp_path / "aws.log").read_text().split()[:4] == ["ec2", "describe-instances", "--instance-ids", "i-3"]


def test_status_a_silent_node_whose_instance_runs_is_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = world(tmp_path, monkeypatch, stopped=set())
    (tmp_path / "state" / "i-3").write_text("stopped")  # the daemon is refused...
    (tmp_path / "bin" / "aws").write_text("#!/bin/bash\necho 'i-3 running'\n")  # ...but EC2 says it runs
    r = bkf("status", "--outputs", str(out))
    assert r.exit_code == 1, r.output
    assert [line.split()[:3] for line in r.stdout.splitlines()[1:4] if line.startswith("amd64-2 ")] == [
        ["amd64-2", "linux/amd64", "DOWN"]]


def test_status_without_wake_data_reports_a_silent_node_down(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    out = world(tmp_path, monkeypatch, stopped={"amd64-2"})
    out.write_text(json.dumps(outputs(wake=None)))
    r = bkf("status", "--outputs", str(out), "--json")
    assert r.exit_code == 1
    assert [n["state"] for n in json.loads(r.stdout)] == ["up", "up", "down"]
    assert not (tmp_path / "aws.log").exists()


def test_wake_starts_only_the_stopped_nodes_with_a_line_per_node(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out = world(tmp_path, monkeypatch, stopped={"amd64-2", "arm64-1"}, running=frozenset({"amd64-2", "arm64-1"}))
    r = bkf("wake", "--outputs", str(out))
    assert r.exit_code == 0, r.output
    starts = [x for x in (tmp_path / "aws.log").read_text().splitlines() if "start-instances" in x]
    assert starts == ["ec2 start-instances --instance-ids i-2 i-3 --region eu-west-1"]
    lines = r.stdout.splitlines()
    assert lines[:3] == ["amd64-1: running", "arm64-1: stopped", "amd64-2: stopped"]
    assert any(x.startswith("amd64-2: answers mTLS") for x in lines)
    assert any(x.startswith("arm64-1: answers mTLS") for x in lines)


def test_builder_create_runs_the_stacks_own_script_with_the_key_and_the_client(tmp_path: Path) -> None:
    script = '# --key) handled here\necho "args: $*"; echo "pems: $BKF_TLS_CA $BKF_TLS_CERT"; exit 3\n'
    out = tmp_path / "outputs.json"
    out.write_text(json.dumps(outputs(script=script)))
    r = subprocess.run([sys.executable, "-m", "bkf", "builder", "create", "--key", "acme/api", "--client", "ci",
                        "--outputs", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 3  # the script's own status
    assert r.stdout.splitlines() == ["args: --key acme/api", "pems: CA CERT-CI"]


def test_builder_create_says_a_key_changes_nothing_with_one_node_per_platform(tmp_path: Path) -> None:
    out = tmp_path / "outputs.json"
    out.write_text(json.dumps(outputs(script='echo "args: $*"\n')))
    r = bkf("builder", "create", "--key", "acme/api", "--outputs", str(out))
    assert r.exit_code == 0 and r.stdout == "" and "the key changes nothing" in r.stderr


def test_insights_counts_every_build_once_and_names_a_down_node(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # amd64-1 and arm64-1 both answer the same recorded history: its Refs count once
    out = world(tmp_path, monkeypatch, stopped={"amd64-2"})
    (tmp_path / "bin" / "aws").write_text("#!/bin/bash\necho 'i-3 running'\n")  # EC2 runs it: down
    chart = tmp_path / "insights.png"
    r = bkf("insights", "--outputs", str(out), "--json", "--chart", str(chart))
    assert r.exit_code == 1, r.output  # a node could not be read
    js = json.loads(r.stdout)
    rows = {x["key"]: x for x in js["rows"]}
    a, b = rows["https://github.com/example/repo-a"], rows["https://github.com/example/repo-b"]
    assert (a["builds"], a["failures"], a["cached_steps"], a["total_steps"]) == (2, 0, 2, 12)
    assert (b["builds"], b["failures"]) == (2, 1)
    assert js["nodes"]["amd64-1"] == "up" and js["nodes"]["amd64-2"].startswith("down: ")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = bkf("insights", "--outputs", str(out), "--by", "node").stdout
    assert table.split("\n")[1].split()[:3] == ["amd64-1", "4", "1"]
    assert "amd64-2: down (dial tcp 10.0.0.3:1234: connect: connection refused)" in table
    # the same silent node is stopped, not down, when its instance is stopped
    (tmp_path / "bin" / "aws").write_text("#!/bin/bash\necho 'i-3 stopped'\n")
    r = bkf("insights", "--outputs", str(out), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["nodes"]["amd64-2"] == "stopped"


# ---- every user error: one line on stderr, a non-zero exit, no traceback ----

def test_empty_stdin_in_ci_is_one_line() -> None:
    line = one_line_error(bkf("status", stdin=""))
    assert "no stack outputs on stdin" in line


def test_a_missing_outputs_file_and_outputs_that_are_not_json(tmp_path: Path) -> None:
    assert "No such file or directory" in one_line_error(bkf("status", "--outputs", str(tmp_path / "no.json")))
    (tmp_path / "bad.json").write_text("{nope")
    assert "are not JSON" in one_line_error(bkf("insights", "--outputs", str(tmp_path / "bad.json")))
    (tmp_path / "other.json").write_text('{"url": "x"}')
    assert "not a buildkit-farm stack" in one_line_error(bkf("wake", "--outputs", str(tmp_path / "other.json")))


def test_a_failing_pulumi_keeps_pulumis_own_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "pulumi"
    fake.write_text("#!/bin/bash\necho 'error: no stack named '\\''nope'\\'' found' >&2\nexit 255\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    line = one_line_error(bkf("status", "--stack", "nope"))
    assert line.endswith("failed: error: no stack named 'nope' found"), line


def test_no_buildctl_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "outputs.json"
    out.write_text(json.dumps(outputs()))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert one_line_error(bkf("status", "--outputs", str(out))) == "bkf: farm status needs buildctl on PATH"
    assert one_line_error(bkf("insights", "--outputs", str(out))) == "bkf: farm insights needs buildctl on PATH"


def test_an_unknown_client_and_an_unknown_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = world(tmp_path, monkeypatch, stopped=set())
    assert "no client 'x'" in one_line_error(bkf("status", "--outputs", str(out), "--client", "x"))
    assert one_line_error(bkf("wake", "nope", "--outputs", str(out))) == "bkf: no node nope in this stack"


def test_summary_of_a_missing_or_empty_preview(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    assert one_line_error(bkf("summary", str(missing))) == (
        f"bkf: cannot read the preview: No such file or directory: {missing}")
    assert one_line_error(bkf("summary", "-", stdin="")) == "bkf: the preview is empty (stdin)"


def test_summary_renders_a_recorded_preview() -> None:
    r = bkf("summary", str(ROOT / "tests" / "unit" / "fixtures" / "previews" / "ssh-none.json"))
    assert r.exit_code == 0 and r.stdout.startswith("### Infrastructure preview")


def test_the_installed_entry_point_prints_no_traceback() -> None:
    """Through `python -m bkf` (what the console script calls), with nothing on stdin."""
    r = subprocess.run([sys.executable, "-m", "bkf", "status"], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    alias = subprocess.run([sys.executable, "-m", "components.status"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, cwd=ROOT)
    assert (alias.returncode, alias.stderr) == (r.returncode, r.stderr)


def test_load_refuses_bad_input_in_one_line_before_anything_runs(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # a docker that records being called: a refusal must come before any command
    trace = tmp_path / "called"
    for tool in ("docker", "docker-buildx"):
        (tmp_path / tool).write_text(f"#!/bin/sh\necho {tool} >> {trace}\n")
        (tmp_path / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("BKF_LOAD_REGISTRY", raising=False)
    line = one_line_error(bkf("load", "App", str(tmp_path), "--via", "https://reg"))
    assert line.startswith("bkf: --via: 'https://reg' is not a registry host") and "; IMAGE: 'App' is not" in line
    assert one_line_error(bkf("load", "app:dev", str(tmp_path))).startswith("bkf: --via: no registry given")
    assert one_line_error(bkf("load", "app:dev", str(tmp_path / "nope"), "--via", "reg:5000")) == \
        f"bkf: CONTEXT: no directory {tmp_path / 'nope'}"
    assert one_line_error(bkf("load", "App", str(tmp_path / "nope"), "--via", "reg:5000")) == \
        f"bkf: IMAGE: 'App' is not an image name like app:dev or team/app (lower-case path, optional :tag, " \
        f"no digest); CONTEXT: no directory {tmp_path / 'nope'}"
    assert not trace.exists()
    # an engine that does not answer: one line, still before the build
    (tmp_path / "docker").write_text(f"#!/bin/sh\necho docker >> {trace}\n"
                                     "echo 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    assert one_line_error(bkf("load", "app:dev", str(tmp_path), "--via", "reg:5000")) == \
        "bkf: no Docker engine answers (docker version: Cannot connect to the Docker daemon)"
    assert trace.read_text() == "docker\n"
