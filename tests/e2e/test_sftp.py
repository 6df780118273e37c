"""Tier 3: an SSH host whose sshd has no sftp subsystem is stopped before the artifact copy.

pulumi-command's CopyToRemote copies over SFTP (the substitute plugin opens the subsystem the
same way, see tests/toolchain); without the check (components/backends/ssh/sftp.py) the user
would get x/crypto's bare "ssh: subsystem request failed". The real engine runs `pulumi up`
against a test host whose sshd config has no `Subsystem sftp` line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.backends.ssh.sftp import NO_SFTP_MESSAGE, render_artifact_dir_script
from harness.hosts import make_artifact, need, running_hosts
from harness.stack import file_backend, running_stack, stack_config

pytestmark = pytest.mark.e2e

STACK = "nosftp"
HOSTS = {"h18": "amd64-1"}
#: a host whose sshd has the subsystem: the check passes there, having really asked sshd
WITH_SFTP = "h19"


def test_a_host_without_sftp_is_stopped_before_the_copy_with_the_way_out(tmp_path: Path) -> None:
    need("pulumi", "pulumi-language-python")
    env = file_backend(tmp_path)
    with running_hosts([*HOSTS, WITH_SFTP], tmp_path / "state", no_sftp=list(HOSTS)) as hs:
        # the check itself, in real sshd sessions (both hosts run this machine's OpenSSH)
        no_sftp, with_sftp = hs.hosts
        check = render_artifact_dir_script("/opt/buildkit-farm/artifacts", "10.77.0.x")
        r = hs.ssh(no_sftp, check, check=False)
        assert r.returncode == 1 and NO_SFTP_MESSAGE in r.stderr, r.stderr
        assert f"{hs.state}/hosts/h18/sshd_config" in r.stderr, r.stderr  # the config sshd was started with
        r = hs.ssh(with_sftp, check, check=False)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        artifacts = tmp_path / "artifacts"
        make_artifact(artifacts)
        with running_stack(STACK, tmp_path, stack_config(HOSTS, "bkf-nosftp", hs.state, artifacts), env=env) as stack:
            up = stack.pulumi("up", "--yes", "--skip-preview", check=False)
            out = up.stdout + up.stderr
            assert up.returncode != 0, out[-3000:]
            assert "has no sftp subsystem" in out, out
            assert "Add 'Subsystem sftp internal-sftp' to" in out and "unset ssh.artifactDir" in out, out[-3000:]
            assert "subsystem request failed on channel" not in out  # stopped before the copy tried
            made = {r["urn"].rsplit("::", 1)[-1] for r in json.loads(
                stack.pulumi("stack", "export").stdout)["deployment"].get("resources", [])}
            assert "bkf-amd64-1-artifact" not in made and "bkf-amd64-1-buildkitd" not in made, made
            assert not any("buildkitd" in p for p in hs.processes(no_sftp))
            assert hs.ssh(no_sftp, "ls /opt/buildkit-farm/artifacts").stdout.strip() == ""  # nothing copied
        down = stack.down
        assert down is not None
        assert down.returncode == 0, down.stderr[-3000:]
