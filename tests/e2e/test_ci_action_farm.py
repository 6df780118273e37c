"""Tier 3: the one-step CI connect (.github/actions/buildkit-farm/run.sh) against a live farm.

The three-node farm of tests/e2e/scale_farm.py (two amd64 nodes, real `pulumi up`, real stack
outputs). run.sh is run as the action runs it: the step's environment built from action.yml (each
`${{ inputs.x }}` replaced by the input or its default), GITHUB_ACTIONS=true, temp GITHUB_ENV and
GITHUB_OUTPUT files, RUNNER_TEMP; and once as the GitLab template's before_script runs it (group
variables, files, no GITHUB_*). Each build then goes through the builder the step left selected
(BUILDX_BUILDER and BUILDX_CONFIG as the next step sees them, no --builder flag) and is found in the
history of the daemon that the rendezvous order (components.builder.affinity.rank) picks.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import string
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from components.builder.affinity import rank
from harness.farm import Farm
from harness.hosts import ROOT, run, sample_context
from tests.e2e.scale_farm import AMD, BUILDER, HOSTS, answers, keys_for_each_amd64_node, ran_on, start, stop

pytestmark = pytest.mark.e2e

ACTION = ROOT / ".github" / "actions" / "buildkit-farm"
GITLAB_TEMPLATE = ROOT / "examples" / "ci" / "gitlab" / "buildkit-farm.gitlab-ci.yml"
MISSING_KEY = ("buildkit-farm: missing the client key (stack output clientKey): set the input client-key "
               "(BKF_TLS_KEY) or pass outputs from `pulumi stack output --json --show-secrets`")


@pytest.fixture(scope="module")
def farm(scale_farm: Farm) -> Iterator[Farm]:
    """The shared farm as a CI job finds it: every node running, no idle stop (test_scale.py's last
    test turns it on and lets nodes stop when it ran first)."""
    cfg = scale_farm.stack.read_config()
    if cfg.pop("buildkit-farm:idleStop", None) is not None:
        scale_farm.stack.write_config(cfg)
        scale_farm.up()
    for node in HOSTS.values():
        if not answers(scale_farm, node):
            start(scale_farm, node)
    assert all(answers(scale_farm, n) for n in HOSTS.values())
    yield scale_farm


def runner_env() -> dict[str, str]:
    """This machine's environment without what a CI runner would not have: the stack's buildx
    config and builder, and any variable of the action or of another CI."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("BKF_", "BUILDX_", "GITHUB_", "RUNNER_", "CI_"))}


@dataclass
class Job:
    """One CI job's directories and what its step printed."""

    dir: Path
    result: subprocess.CompletedProcess[str]

    @property
    def github_env(self) -> str:
        return (self.dir / "github_env").read_text()

    @property
    def github_output(self) -> str:
        return (self.dir / "github_output").read_text()


def github_step(job: Path, inputs: dict[str, str], repository: str) -> Job:
    """The action's one step as a runner runs it: action.yml's env with the inputs put in, its
    shell (bash -eo pipefail) and its `run` line, the runner's variables."""
    action = yaml.safe_load((ACTION / "action.yml").read_text())
    assert set(inputs) <= set(action["inputs"]), inputs
    step = action["runs"]["steps"][0]

    def expression(value: str) -> str:
        m = re.fullmatch(r"\$\{\{ inputs\.([\w-]+) \}\}", value)
        assert m, value
        return inputs.get(m[1], action["inputs"][m[1]]["default"])

    for d in ("runner", "home"):
        (job / d).mkdir(parents=True)
    (job / "github_env").write_text("")
    (job / "github_output").write_text("")
    env = {**runner_env(), "HOME": str(job / "home"), "GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": repository,
           "GITHUB_ENV": str(job / "github_env"), "GITHUB_OUTPUT": str(job / "github_output"),
           "RUNNER_TEMP": str(job / "runner"), "GITHUB_ACTION_PATH": str(ACTION),
           **{k: expression(v) for k, v in step["env"].items()}}
    assert step["shell"] == "bash"
    r = run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], env=env, check=False,
            timeout=600)
    print(f"\n$ action step (key input {inputs.get('key', '')!r}, repository {repository})\n{r.stdout}{r.stderr}")
    return Job(job, r)


def gitlab_job(job: Path, farm: Farm, project: str, **unset: bool) -> Job:
    """The template's before_script as a GitLab job runs it (sh): the group variables, two of them
    File variables (a path to a file holding the value), the template's own variables."""
    template = yaml.safe_load(GITLAB_TEMPLATE.read_text())[".buildkit-farm"]
    (job / "project").mkdir(parents=True)
    (job / "home").mkdir()
    files = {"BKF_RUN_SH": (ACTION / "run.sh").read_text(),
             "BKF_BUILDX_CREATE_SCRIPT": farm.outputs["buildxCreateScript"]}
    group = {"BKF_BUILDER": farm.outputs["builderName"], "BKF_TLS_CA": farm.outputs["caCert"],
             "BKF_TLS_CERT": farm.outputs["clientCert"], "BKF_TLS_KEY": farm.outputs["clientKey"]}
    env = {**runner_env(), "HOME": str(job / "home"), "CI_PROJECT_DIR": str(job / "project"),
           "CI_PROJECT_PATH": project, "GITLAB_CI": "true"}
    for name, value in files.items():
        (job / name).write_text(value)
        env[name] = str(job / name)
    env.update({k: v for k, v in group.items() if not unset.get(k)})
    env.update({k: string.Template(v).substitute(env) for k, v in template["variables"].items()})
    r = run(["sh", "-c", template["before_script"][-1]], env=env, cwd=job / "project", check=False, timeout=600)
    print(f"\n$ gitlab before_script (CI_PROJECT_PATH {project})\n{r.stdout}{r.stderr}")
    return Job(job, r)


def selected(env_lines: str) -> dict[str, str]:
    """KEY=VALUE lines (what GITHUB_ENV hands the next steps) as a dict."""
    return dict(line.split("=", 1) for line in env_lines.splitlines())


def build_with(farm: Farm, job: Path, selection: dict[str, str], bust: str) -> str:
    """A linux/amd64 build as the job's next step runs it: the selection in its environment, no --builder."""
    out = job / "out"
    ctx = sample_context(farm.dir / "sample")
    run(["docker-buildx", "build", "--progress", "plain", "--platform", "linux/amd64", "--build-arg",
         f"BUST={bust}", "--output", f"type=local,dest={out}", str(ctx)],
        env={**runner_env(), "HOME": str(job / "home"), **selection}, timeout=900)
    return (out / "built-on").read_text()


def inspected_nodes(job: Path, selection: dict[str, str]) -> list[str]:
    """The node names `docker-buildx inspect` shows for the selected builder (no name given)."""
    r = run(["docker-buildx", "inspect"], env={**runner_env(), "HOME": str(job / "home"), **selection})
    assert re.search(rf"^Name:\s+{BUILDER}$", r.stdout, re.M), r.stdout
    return [m for m in re.findall(r"^Name:\s+(\S+)", r.stdout, re.M) if m != BUILDER]


def key_lines(farm: Farm) -> list[str]:
    return [ln for ln in farm.outputs["clientKey"].splitlines() if ln and "PRIVATE KEY" not in ln]


def plain_outputs(farm: Farm) -> str:
    """`pulumi stack output --json` as a repository variable holds it (the secrets shown as [secret])."""
    text = farm.pulumi("stack", "output", "--json").stdout
    assert json.loads(text)["clientKey"] == "[secret]"
    return text


def assert_certs_private(certs: Path, farm: Farm) -> None:
    assert stat.S_IMODE(certs.stat().st_mode) == 0o700, oct(certs.stat().st_mode)
    for f in ("ca.pem", "cert.pem", "key.pem"):
        assert stat.S_IMODE((certs / f).stat().st_mode) == 0o600, f
    assert (certs / "key.pem").read_text() == farm.outputs["clientKey"] + "\n"


def test_the_action_puts_each_key_on_its_node_and_leaves_the_builder_selected(farm: Farm, tmp_path: Path) -> None:
    keys = keys_for_each_amd64_node()
    outputs = plain_outputs(farm)
    for node, key in keys.items():
        # the input wins over the repository, which the rendezvous order sends to the other node
        other = next(k for n, k in keys.items() if n != node)
        job = github_step(tmp_path / node, {"outputs": outputs, "client-key": farm.outputs["clientKey"],
                                            "key": key}, repository=other)
        r = job.result
        assert r.returncode == 0, r.stderr
        assert f"affinity: key {key} orders linux/amd64 as {' '.join(rank(key, AMD))}" in r.stdout
        runner = job.dir / "runner"
        assert job.github_env == f"BUILDX_BUILDER={BUILDER}\nBUILDX_CONFIG={runner}/buildx\n"
        assert job.github_output == f"builder={BUILDER}\nnodes={node}=linux/amd64 arm64-1=linux/arm64\n"
        assert_certs_private(runner / "buildx" / "certs" / BUILDER, farm)
        # GitHub registers each key line as a mask before anything else is printed; nothing else shows it
        masks = [f"::add-mask::{ln}" for ln in farm.outputs["clientKey"].splitlines()]
        assert r.stdout.splitlines()[:len(masks)] == masks
        printed = "\n".join(r.stdout.splitlines()[len(masks):]) + r.stderr + job.github_env + job.github_output
        assert not any(ln in printed for ln in key_lines(farm))
        # the next step: the selected builder holds the key's node, and the build runs there
        selection = selected(job.github_env)
        assert inspected_nodes(job.dir, selection) == [node, "arm64-1"]
        bust = f"action-{node}-{secrets.token_hex(4)}"
        assert f"bust={bust}" in build_with(farm, job.dir, selection, bust)
        assert ran_on(farm, bust) == [node]


def test_with_the_keys_node_stopped_the_next_one_builds_and_the_dead_one_is_reported(farm: Farm,
                                                                                    tmp_path: Path) -> None:
    key = keys_for_each_amd64_node()["amd64-1"]
    first, second = rank(key, AMD)
    stop(farm, first)
    try:
        status = run(["bkf", "status"], input=farm.pulumi("stack", "output", "--json", "--show-secrets").stdout,
                     env=farm.env, check=False)
        print(f"\n$ pulumi stack output --json --show-secrets | bkf status   # {first} stopped\n"
              f"{status.stdout}{status.stderr}(exit {status.returncode})")
        assert status.returncode == 1
        assert re.search(rf"^{first}\s+linux/amd64\s+DOWN", status.stdout, re.M), status.stdout
        job = github_step(tmp_path, {"outputs": plain_outputs(farm), "client-key": farm.outputs["clientKey"]},
                          repository=key)
        r = job.result
        assert r.returncode == 0, r.stderr
        assert f"affinity: skipping {first}" in r.stderr
        assert f"preflight: node {first} " in r.stderr  # the real error of the dead node, named
        assert job.github_output == f"builder={BUILDER}\nnodes={second}=linux/amd64 arm64-1=linux/arm64\n"
        selection = selected(job.github_env)
        assert inspected_nodes(job.dir, selection) == [second, "arm64-1"]
        bust = f"failover-{secrets.token_hex(4)}"
        build_with(farm, job.dir, selection, bust)
        assert any(x["FrontendAttrs"].get("build-arg:BUST") == bust for x in farm.history(second))
    finally:
        start(farm, first)
    assert ran_on(farm, bust) == [second]  # (the stopped node's history is read once it is back)


def test_the_gitlab_template_connects_by_the_project_path(farm: Farm, tmp_path: Path) -> None:
    project = "group/service"
    node = rank(project, AMD)[0]
    job = gitlab_job(tmp_path, farm, project)
    r = job.result
    assert r.returncode == 0, r.stderr
    buildx = tmp_path / "project" / ".buildx"
    assert f"buildkit-farm: builder {BUILDER} selected (BUILDX_CONFIG={buildx}): {node}=linux/amd64 " \
           "arm64-1=linux/arm64" in r.stdout
    assert "::" not in r.stdout + r.stderr  # no GitHub workflow commands outside GitHub
    assert not any(ln in r.stdout + r.stderr for ln in key_lines(farm))
    assert_certs_private(buildx / "certs" / BUILDER, farm)
    # the job's script: BUILDX_BUILDER and BUILDX_CONFIG are the template's variables
    selection = {"BUILDX_BUILDER": BUILDER, "BUILDX_CONFIG": str(buildx)}
    assert inspected_nodes(tmp_path, selection) == [node, "arm64-1"]
    bust = f"gitlab-{secrets.token_hex(4)}"
    build_with(farm, tmp_path, selection, bust)
    assert ran_on(farm, bust) == [node]


def test_a_missing_client_key_is_one_line_and_a_failed_step(farm: Farm, tmp_path: Path) -> None:
    # outputs without --show-secrets and no client-key input: what a forgotten secret looks like
    job = github_step(tmp_path / "github", {"outputs": plain_outputs(farm)}, repository="acme/api")
    assert job.result.returncode != 0
    assert job.result.stderr == f"::error::{MISSING_KEY}\n"
    assert job.github_env == job.github_output == ""
    assert list((job.dir / "runner").iterdir()) == []  # refused before any builder or cert file
    job = gitlab_job(tmp_path / "gitlab", farm, "group/service", BKF_TLS_KEY=True)
    assert job.result.returncode != 0
    assert job.result.stderr == f"{MISSING_KEY}\n"
    assert not (tmp_path / "gitlab" / "project" / ".buildx").exists()
