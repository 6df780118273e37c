"""idleStop: config rules, the payload only changes when it is on, and the idle check's decisions
(the rendered script against a fake buildctl; the e2e tier runs it on real hosts)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from components.config import parse_config
from components.config.errors import ConfigError
from components.node.idle import IDLE_MARKER, IDLE_SCRIPT, IdleStop, render_idle_script
from components.node.layout import ENV_FILE
from components.node.payload import render_payload, render_uninstall
from components.node.settings import NodeSettings
from tests.unit import mockrt
from tests.unit.test_policy import example_config

SETTINGS = NodeSettings(node_name="amd64-1", platform="linux/amd64", buildkit_version="v0.32.2",
                        buildkit_sha256="0" * 64, port=1234, cert_source="stdin", init="none")
SSH = {"backend": "ssh", "nodes": [{"name": "amd64-1", "platform": "linux/amd64", "host": "10.0.0.1"}],
       "ssh": {"privateKeyPath": "k"}}


def test_off_by_default_and_refused_where_it_cannot_work() -> None:
    assert not parse_config(SSH).idle_stop.enabled
    with pytest.raises(ConfigError) as e:
        parse_config({**SSH, "idleStop": {"afterMinutes": 10}, "volume": {"sizeGb": 5}})
    # every problem at once: the bad field and the cross-section rule
    assert "volume.sizeGb: 5 is not an integer from 20 to 16384 GiB" in str(e.value)
    assert "idleStop.command: '': backend ssh needs the command that stops these hosts" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config({"backend": "kubernetes", "nodes": [{"name": "amd64-1", "platform": "linux/amd64"}],
                      "allowedCidrs": ["10.0.0.0/8"], "idleStop": {"afterMinutes": 5}})
    # kubernetes: idle stop is the StatefulSet scaled to 0, by the scaler container's image
    assert "kubernetes.idleImage: '': idleStop.afterMinutes is 5: the scaler container needs an image" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config({"backend": "kubernetes", "nodes": [{"name": "amd64-1", "platform": "linux/amd64"}],
                      "allowedCidrs": ["10.0.0.0/8"], "idleStop": {"afterMinutes": 5, "command": "poweroff"},
                      "kubernetes": {"idleImage": "curl:8", "apiServer": "http://api"}})
    msg = str(e.value)
    assert "idleStop.command: 'poweroff': a Kubernetes node stops by scaling its StatefulSet to 0" in msg
    assert "kubernetes.idleImage: 'curl:8' is not an image with sh and curl pinned by tag and digest" in msg
    assert "kubernetes.apiServer: 'http://api' is not an https:// URL" in msg
    with pytest.raises(ConfigError) as e:
        parse_config({**SSH, "idleStop": {"afterMinutes": 1441, "checkSeconds": 1, "command": "rm $HOME"}})
    msg = str(e.value)
    assert "idleStop.afterMinutes: 1441 is not an integer from 0 to 1440 minutes (0: off)" in msg
    assert "idleStop.checkSeconds: 1 is not an integer from 5 to 3600 seconds" in msg
    assert "idleStop.command: 'rm $HOME' is not a command like 'systemctl poweroff'" in msg


def test_payload_is_unchanged_when_off_and_enables_the_check_last_when_on() -> None:
    off = render_payload(SETTINGS, "toml")
    assert "bkf-idle" not in off and off.endswith("exec '/opt/buildkit-farm/bkf-node.sh' install\n")
    on = render_payload(SETTINGS, "toml", idle=IdleStop(600, 60))
    assert on.startswith(off.removesuffix("exec '/opt/buildkit-farm/bkf-node.sh' install\n"))
    tail = on.splitlines()[-3:]
    assert tail == [f"touch '{IDLE_MARKER}'", "'/opt/buildkit-farm/bkf-node.sh' install",
                    f"exec '{IDLE_SCRIPT}' enable"]
    assert render_uninstall(False) == render_uninstall(False, idle=False)
    assert render_uninstall(False, idle=True).startswith(f"if [ -x '{IDLE_SCRIPT}' ]; then '{IDLE_SCRIPT}' disable")


def test_aws_instances_stop_on_poweroff_only_with_idle_stop(tmp_path: Path) -> None:
    cfg = example_config("dev", tmp_path)
    off = mockrt.run_main(cfg)
    on = mockrt.run_main(mockrt.with_section(cfg, "idleStop", afterMinutes=30))
    for r in off.of_type("aws:ec2/instance:Instance"):
        assert "instanceInitiatedShutdownBehavior" not in r.inputs
    for r in on.of_type("aws:ec2/instance:Instance"):
        assert r.inputs["instanceInitiatedShutdownBehavior"] == "stop"


class Node:
    """The rendered idle script with its paths moved into a temp dir, and a fake buildctl."""

    def __init__(self, tmp: Path, after_s: int = 60) -> None:
        self.tmp = tmp
        (tmp / "bin").mkdir()
        (tmp / "run").mkdir()
        self.history = tmp / "history"
        self.history.write_text("")
        (tmp / "bin" / "buildctl").write_text(
            '#!/bin/bash\n[ -e "$FAKE_DOWN" ] && { echo "connection refused" >&2; exit 1; }\ncat "$FAKE_HISTORY"\n')
        (tmp / "bin" / "buildctl").chmod(0o755)
        script = render_idle_script(IdleStop(after_s, 5, f"touch {tmp}/stopped"), SETTINGS)
        for real, fake in ((IDLE_MARKER, f"{tmp}/marker"), (ENV_FILE, f"{tmp}/node.env"),
                           ("/run/buildkit", f"{tmp}/run"), ("/opt/buildkit-farm/bin:", f"{tmp}/bin:")):
            script = script.replace(real, fake)
        self.script = tmp / "bkf-idle.sh"
        self.script.write_text(script)
        (tmp / "node.env").write_text("x")
        os.utime(tmp / "node.env", (time.time() - 10, time.time() - 10))
        (tmp / "marker").write_text("")

    def since(self, ago: int) -> None:
        (self.tmp / "run" / "bkf-idle.since").write_text(str(int(time.time()) - ago))

    def check(self) -> subprocess.CompletedProcess[str]:
        # the script sets its own PATH (the node's buildctl first): the fake sits where that one would
        env = {"PATH": "/usr/bin:/bin", "FAKE_HISTORY": str(self.history),
               "FAKE_DOWN": str(self.tmp / "down")}
        return subprocess.run(["bash", str(self.script), "check"], env=env, capture_output=True, text=True)

    @property
    def stopped(self) -> bool:
        return (self.tmp / "stopped").exists()


def test_an_idle_node_stops(tmp_path: Path) -> None:
    n = Node(tmp_path)
    n.since(3600)
    n.history.write_text(f"done {int(time.time()) - 61}\ndone {int(time.time()) - 900}\n")
    r = n.check()
    assert r.returncode == 0 and n.stopped, r.stderr
    assert "no build for 61s (limit 60s)" in r.stderr
    assert not (tmp_path / "run" / "bkf-idle.since").exists()  # a woken node starts a fresh clock


@pytest.mark.parametrize("case", ["build in flight", "recent build", "just woken", "daemon down", "turned off"])
def test_a_node_that_is_not_idle_keeps_running(tmp_path: Path, case: str) -> None:
    n = Node(tmp_path)
    n.since(3600)
    n.history.write_text(f"done {int(time.time()) - 900}\n")
    if case == "build in flight":
        n.history.write_text(f"running\ndone {int(time.time()) - 900}\n")
    elif case == "recent build":
        n.history.write_text(f"done {int(time.time()) - 30}\n")
    elif case == "just woken":
        n.since(10)  # first check after boot was 10 s ago; the history is old
    elif case == "daemon down":
        (tmp_path / "down").touch()
    elif case == "turned off":
        (tmp_path / "node.env").write_text("newer install without idleStop")
    r = n.check()
    assert r.returncode == 0 and not n.stopped, (case, r.stderr)
    if case == "daemon down":
        assert "the daemon does not answer (connection refused): not stopping" in r.stderr
    if case == "turned off":
        assert "idleStop is off in this node's current settings" in r.stderr


def test_a_daemon_back_from_a_long_stop_gets_a_fresh_clock(tmp_path: Path) -> None:
    """Hosts whose stop command only stops the daemon keep checking while it is down: that time
    must not count, or the node would be stopped again right after it is woken."""
    n = Node(tmp_path)
    n.since(3600)
    n.history.write_text(f"done {int(time.time()) - 9000}\n")
    (tmp_path / "down").touch()
    n.check()
    assert not (tmp_path / "run" / "bkf-idle.since").exists()
    r = n.check()  # still down: quiet, nothing written
    assert r.stderr == "" and not (tmp_path / "run" / "bkf-idle.since").exists()
    (tmp_path / "down").unlink()
    r = n.check()  # woken: the clock starts now
    assert not n.stopped, r.stderr


def test_first_check_starts_the_clock(tmp_path: Path) -> None:
    n = Node(tmp_path)
    n.history.write_text(f"done {int(time.time()) - 9000}\n")
    r = n.check()
    assert not n.stopped, r.stderr
    assert abs(int((tmp_path / "run" / "bkf-idle.since").read_text()) - time.time()) < 5


def test_idle_script_passes_shellcheck(tmp_path: Path) -> None:
    p = tmp_path / "idle.sh"
    p.write_text(render_idle_script(IdleStop(600, 60), SETTINGS))
    subprocess.run(["shellcheck", str(p)], check=True)
