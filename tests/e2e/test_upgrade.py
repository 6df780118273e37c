"""Tier 3: a stack made by the previous release upgrades in place with this code.

The previous release is a fixed commit of this repository (BASELINE), taken out with
`git archive` and run by the real engine against its own two test hosts. This code then
previews the same stack: the only changes allowed are the ones this release makes on purpose
(EXPECTED: each node's payload, updated in place; nothing replaced, no PKI change). Then this
code applies them (the nodes reinstall and restart on the new payload), a second preview is
empty (no perpetual diff), and this code tears the stack down.

BASELINE moves forward with each release that changes what nodes run (their payload), and
EXPECTED says what that release changes; the commit that moves them says so.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.hosts import ROOT, make_artifact, need, running_hosts
from harness.stack import file_backend, running_stack, stack_config

pytestmark = pytest.mark.e2e

#: the previous release: the last commit before the lifecycle lock, the drain on restart and the
#: SFTP check (b0fa13b, the commit before the BuildkitFarm component, was the one before it)
BASELINE = "921235b"
#: what upgrading from BASELINE changes, (operation, resource name), each node in place: the payload
#: (bkf-node.sh and the env file), and the artifact directory step, which now also checks for SFTP
#: (a Command without `update` runs its new `create` again); and the builder's create script, which
#: now bounds each node's probe (builder.probeTimeoutSeconds), updated in place the same way
EXPECTED = sorted([*(("update", f"{node}-{step}") for node in ("amd64-1", "arm64-1")
                     for step in ("buildkitd", "artifact-dir")), ("update", "builder-buildx")])
STACK = "upgrade"
HOSTS = {"h9": "amd64-1", "h10": "arm64-1"}


def test_the_previous_release_stack_upgrades_in_place(tmp_path: Path) -> None:
    need("pulumi", "pulumi-language-python", "git")
    old = tmp_path / "baseline"
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    (old / ".venv").symlink_to(ROOT / ".venv")  # same pinned SDKs; the baseline needs nothing more
    env = file_backend(tmp_path)

    def changes(cwd: Path) -> tuple[list[tuple[str, str]], dict[str, int]]:
        plan = json.loads(stack.pulumi("preview", "--json", cwd=cwd).stdout)
        steps = [(s["op"], s["urn"].rsplit("::", 1)[-1]) for s in plan["steps"] if s["op"] != "same"]
        return sorted(steps), plan["changeSummary"]

    with running_hosts(list(HOSTS), tmp_path / "state") as hs:
        artifacts = tmp_path / "artifacts"
        make_artifact(artifacts)
        cfg = stack_config(HOSTS, "bkf-upgrade", hs.state, artifacts)
        with running_stack(STACK, tmp_path, cfg, env=env, config=old / f"Pulumi.{STACK}.yaml") as stack:
            stack.pulumi("up", "--yes", "--skip-preview", cwd=old)
            state = stack.pulumi("stack", "export", cwd=old).stdout
            certs = {r["urn"]: r["outputs"].get("certPem") for r in json.loads(state)["deployment"]["resources"]
                     if r["type"] == "tls:index/locallySignedCert:LocallySignedCert"}
            changed, summary = changes(ROOT)
            print(f"\nupgrade from {BASELINE}: {summary}")
            assert changed == EXPECTED, changed
            stack.pulumi("up", "--yes", "--skip-preview")
            assert changes(ROOT)[0] == []  # settled: no perpetual diff
            state = stack.pulumi("stack", "export").stdout
            after = {r["urn"]: r["outputs"].get("certPem") for r in json.loads(state)["deployment"]["resources"]
                     if r["type"] == "tls:index/locallySignedCert:LocallySignedCert"}
            assert after == certs and certs  # the same certificates: nothing under the PKI moved
            for h in hs.hosts:
                env_file = hs.ssh(h, "cat /etc/buildkit-farm/node.env").stdout
                assert "BKF_DRAIN_TIMEOUT=600" in env_file, env_file  # the new payload is what runs
                assert any("buildkitd" in p for p in hs.processes(h)), h.name
        down = stack.down
        assert down is not None
        assert down.returncode == 0, down.stderr[-3000:]
        for h in hs.hosts:
            assert not any("buildkitd" in p for p in hs.processes(h)), h.name
