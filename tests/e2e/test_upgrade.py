"""Tier 3: a stack made by an earlier release previews clean with this code, and this code tears it down.

The earlier release is a fixed commit of this repository (BASELINE), taken out with
`git archive` and run by the real engine against its own two test hosts. This code
then previews the same stack: nothing may change but the farm's own new component
(`BuildkitFarm` wraps what used to sit at the stack root; aliases keep every real
resource where it was). Finally this code destroys the stack.

BASELINE moves forward only with a release that deliberately changes what nodes run (their
payload); such a change says so in its commit, and this test then guards the next refactor.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.hosts import ROOT, file_backend, make_artifact, need, run, running_hosts, write_stack_config

pytestmark = pytest.mark.e2e

#: the last commit before the program became one BuildkitFarm component and the layered packages
BASELINE = "b0fa13b"
STACK = "upgrade"
HOSTS = {"h9": "amd64-1", "h10": "arm64-1"}


def test_an_earlier_release_stack_has_no_diff_but_the_new_component(tmp_path: Path) -> None:
    need("pulumi", "pulumi-language-python", "git")
    old = tmp_path / "baseline"
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    (old / ".venv").symlink_to(ROOT / ".venv")  # same pinned SDKs; the baseline needs nothing more
    env = file_backend(tmp_path)

    def pulumi(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["pulumi", *args, "--stack", STACK, "--non-interactive", "--config-file", str(config)],
                   cwd=cwd, env=env, check=check, timeout=900)

    with running_hosts(list(HOSTS), tmp_path / "state") as hs:
        artifacts = tmp_path / "artifacts"
        make_artifact(artifacts)
        config = write_stack_config(old / f"Pulumi.{STACK}.yaml", HOSTS, "bkf-upgrade", hs.state, artifacts)
        run(["pulumi", "stack", "init", STACK, "--non-interactive"], cwd=old, env=env)
        try:
            pulumi(old, "up", "--yes", "--skip-preview")
            state = run(["pulumi", "stack", "export", "--stack", STACK], cwd=old, env=env).stdout
            # (provider instances are not steps of a preview)
            made = len([r for r in json.loads(state)["deployment"]["resources"]
                        if not r["type"].startswith("pulumi:providers:")])
            preview = pulumi(ROOT, "preview", "--json")
            plan = json.loads(preview.stdout)
            changed = [(s["op"], s["urn"].rsplit("::", 2)[-2:]) for s in plan["steps"] if s["op"] != "same"]
            print(f"\nupgrade from {BASELINE}: {plan['changeSummary']}")
            assert changed == [("create", ["buildkit-farm:index:BuildkitFarm", "bkf"])], changed
            # every resource the baseline made (the stack included) is adopted through its alias
            assert plan["changeSummary"] == {"create": 1, "same": made}, (plan["changeSummary"], made)
        finally:
            down = pulumi(ROOT, "destroy", "--yes", "--skip-preview", check=False)
            pulumi(ROOT, "stack", "rm", "--yes", "--force", check=False)
        assert down.returncode == 0, down.stderr[-3000:]
        for h in hs.hosts:
            assert not any("buildkitd" in p for p in hs.processes(h)), h.name
