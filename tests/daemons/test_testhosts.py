"""The test hosts: one state dir owns a host name at a time (a second farm must not take it over)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.hosts import TESTHOSTS, run

pytestmark = pytest.mark.daemons

HOST = "h17"  # no other tier uses it


def hosts_cmd(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BKF_TEST_HOSTS": HOST, "BKF_LOCAL_STATE": str(state)}
    return run(["bash", str(TESTHOSTS), *args], env=env, check=check)


def test_a_second_state_dir_can_neither_take_over_nor_tear_down_a_host(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    hosts_cmd(a, "up")
    try:
        device = Path(f"/run/bkf-testhosts/{HOST}/data-device").resolve()
        r = hosts_cmd(b, "up", check=False)
        assert r.returncode != 0 and f"{HOST} is in use by the test hosts of {a}" in r.stderr, r.stderr
        # the first farm's data device is still the one its daemon would mount
        assert Path(f"/run/bkf-testhosts/{HOST}/data-device").resolve() == device
        r = hosts_cmd(b, "down")
        assert "left alone" in r.stderr
        assert f"bkf-{HOST}" in run(["ip", "netns", "list"]).stdout
    finally:
        hosts_cmd(a, "down")
    assert f"bkf-{HOST}" not in run(["ip", "netns", "list"]).stdout
    assert str(a) not in run(["losetup", "-a"]).stdout
