"""The one-step CI connect (.github/actions/buildkit-farm): its action.yml schema, actionlint on the
example that uses it, shellcheck on run.sh, and run.sh RUN against a rendered create script with
stand-in docker (buildx), buildctl and aws on PATH: the key lands on its node, a dead node is
skipped, a stopped one is woken, the certs are 0600, the key is never printed, a missing input is
one line and a non-zero exit."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.builder.affinity import rank
from components.builder.readiness import Readiness
from components.builder.scripts import BuilderNode, render_create_script
from components.builder.wake import Wake
from tests.support.standins import fake_ec2

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / ".github" / "actions" / "buildkit-farm"
RUN_SH = ACTION / "run.sh"
APP = ROOT / "examples" / "ci" / "github" / "app.yml"
GITLAB_TEMPLATE = ROOT / "examples" / "ci" / "gitlab" / "buildkit-farm.gitlab-ci.yml"

NODES = [BuilderNode("amd64-1", "linux/amd64", "tcp://10.0.0.1:1234", "10.0.0.1"),
         BuilderNode("arm64-1", "linux/arm64", "tcp://10.0.0.2:1234", "10.0.0.2"),
         BuilderNode("amd64-2", "linux/amd64", "tcp://10.0.0.3:1234", "10.0.0.3"),
         BuilderNode("amd64-3", "linux/amd64", "tcp://10.0.0.4:1234", "10.0.0.4")]
AMD = ["amd64-1", "amd64-2", "amd64-3"]
IDS = {"amd64-1": "i-1", "arm64-1": "i-2", "amd64-2": "i-3", "amd64-3": "i-4"}
KEY_PEM = ("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIKeyLineOneSecretMaterialXYZ\n"
           "SecondKeyLineMoreSecretMaterial0123456789abc\n-----END PRIVATE KEY-----")
KEY_LINES = KEY_PEM.splitlines()[1:3]


def tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        pytest.fail(f"{name} is not on PATH: run toolchain/bootstrap.sh and source .toolchain/env.sh")
    return exe


# ---------------------------------------------------------------------------------------------
# action.yml, the example that uses it, the script


def test_action_yml_takes_the_farms_outputs_and_runs_the_script_beside_it() -> None:
    action = yaml.safe_load((ACTION / "action.yml").read_text())
    assert {"outputs", "client-key", "key", "builder-name", "ready-timeout", "create-script", "ca-cert",
            "client-cert", "platforms"} == set(action["inputs"])
    for name, spec in action["inputs"].items():
        # every input is optional for GitHub: run.sh refuses a missing one with its own clear line
        assert spec["description"] and spec["required"] is False and spec["default"] == "", name
    runs = action["runs"]
    assert runs["using"] == "composite" and len(runs["steps"]) == 1
    step = runs["steps"][0]
    assert step["shell"] == "bash" and step["run"] == 'bash "$GITHUB_ACTION_PATH/run.sh"'
    # each input reaches run.sh as the variable run.sh documents, none left out
    env = {v.removeprefix("${{ inputs.").removesuffix(" }}"): k for k, v in step["env"].items()}
    assert set(env) == set(action["inputs"])
    header = RUN_SH.read_text().split("set -euo pipefail", 1)[0]
    assert all(f"#   {var} " in header for var in env.values()), env
    assert action["outputs"] == {
        "builder": {"description": action["outputs"]["builder"]["description"],
                    "value": f"${{{{ steps.{step['id']}.outputs.builder }}}}"},
        "nodes": {"description": action["outputs"]["nodes"]["description"],
                  "value": f"${{{{ steps.{step['id']}.outputs.nodes }}}}"}}
    assert RUN_SH.stat().st_mode & 0o111


def lint_app_with_the_local_action(tmp_path: Path, workflow: str) -> subprocess.CompletedProcess[str]:
    """actionlint checks a step's inputs against a LOCAL action's action.yml: the example in a
    repository of its own whose `uses:` points at a copy of this one."""
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # actionlint finds the project by it
    shutil.copytree(ACTION, tmp_path / ".github" / "actions" / "buildkit-farm")
    uses = next(line.split("uses: ", 1)[1].split()[0] for line in workflow.splitlines()
                if "/.github/actions/buildkit-farm@" in line)
    (tmp_path / ".github" / "workflows" / "app.yml").write_text(
        workflow.replace(uses, "./.github/actions/buildkit-farm"))
    return subprocess.run([tool("actionlint"), "-color=false"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)


def test_actionlint_checks_the_example_against_the_actions_inputs(tmp_path: Path) -> None:
    text = APP.read_text()
    assert "fromJSON" not in text and "jq " not in text and "GITHUB_ENV" not in text
    r = lint_app_with_the_local_action(tmp_path / "ok", text)
    assert r.returncode == 0, r.stdout + r.stderr
    # a misspelt input is caught: actionlint really read action.yml
    r = lint_app_with_the_local_action(tmp_path / "bad", text.replace("client-key:", "clientkey:"))
    assert r.returncode == 1 and 'input "clientkey" is not defined in action' in r.stdout, r.stdout


def test_run_sh_passes_shellcheck() -> None:
    r = subprocess.run([tool("shellcheck"), str(RUN_SH)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout


def test_the_gitlab_template_runs_the_same_script() -> None:
    job = yaml.safe_load(GITLAB_TEMPLATE.read_text())[".buildkit-farm"]
    assert job["before_script"][-1] == 'BKF_CREATE_SCRIPT=$(cat "$BKF_BUILDX_CREATE_SCRIPT") bash "$BKF_RUN_SH"'
    assert job["variables"]["BUILDX_BUILDER"] == "$BKF_BUILDER"
    infra = (ROOT / "examples" / "ci" / "gitlab" / "infra.gitlab-ci.yml").read_text()
    assert f"put BKF_RUN_SH file false {RUN_SH.relative_to(ROOT)}" in infra
    app = yaml.safe_load((ROOT / "examples" / "ci" / "gitlab" / "app.gitlab-ci.yml").read_text())
    assert app["build-image"]["extends"] == ".buildkit-farm" and "before_script" not in app["build-image"]


# ---------------------------------------------------------------------------------------------
# run.sh, run


def world(tmp: Path, down: Collection[str] = (), stopped: Collection[str] = ()) -> dict[str, str]:
    """Stand-ins: `docker buildx` whose node answers while running and not down, `buildctl` that
    reports a refused dial, `aws` with instance states in files."""
    bin_, state = fake_ec2(tmp, IDS, stopped)
    (bin_ / "docker").write_text(f"""#!/bin/bash
[ "$1" = buildx ] || exit 1; shift
echo "$*" >> {tmp}/bx.log
if [ "$1 $2" = "inspect --bootstrap" ] && [ "${{3#probe-}}" != "$3" ]; then
  n=${{3#probe-}}
  case $n in {" ".join(f"{n}) i={i};;" for n, i in IDS.items())} esac
  case " {" ".join(sorted(down))} " in *" $n "*) echo "context deadline exceeded"; exit 1;; esac
  [ "$(cat {state}/$i)" = running ] || {{ echo "context deadline exceeded"; exit 1; }}
  case $n in amd64-*) echo "Platforms: linux/amd64";; *) echo "Platforms: linux/arm64";; esac
fi
exit 0
""")
    (bin_ / "buildctl").write_text('#!/bin/bash\necho "error: connect: connection refused" >&2; exit 1\n')
    for f in ("docker", "buildctl", "aws"):
        (bin_ / f).chmod(0o755)
    (tmp / "github_env").write_text("")
    (tmp / "github_output").write_text("")
    return {"PATH": f"{bin_}:/usr/bin:/bin", "HOME": str(tmp), "RUNNER_TEMP": str(tmp / "runner"),
            "GITHUB_ENV": str(tmp / "github_env"), "GITHUB_OUTPUT": str(tmp / "github_output"),
            "GITHUB_REPOSITORY": "acme/api", "BKF_READY_TIMEOUT": "0", "BKF_READY_INTERVAL": "1"}


def stack_outputs() -> dict[str, Any]:
    """What `pulumi stack output --json --show-secrets` holds (the fields run.sh reads and a few more)."""
    script = render_create_script("bkf", NODES, wake=Wake("eu-west-1", IDS), ready=Readiness(30))
    return {"builderName": "bkf", "buildxCreateScript": script, "backend": "aws", "caCert": "CA PEM",
            "clientCert": "CERT PEM", "clientKey": KEY_PEM, "clientKeys": {}}


def run(tmp: Path, outputs: dict[str, Any] | None = None, env: dict[str, str] | None = None,
        down: Collection[str] = (), stopped: Collection[str] = ()) -> subprocess.CompletedProcess[str]:
    (tmp / "runner").mkdir(parents=True, exist_ok=True)
    full = world(tmp, down, stopped)
    if outputs is not None:
        full["BKF_OUTPUTS"] = json.dumps(outputs)
    full.update(env or {})
    return subprocess.run(["bash", str(RUN_SH)], env=full, capture_output=True, text=True, timeout=120)


def joined(tmp: Path) -> list[str]:
    """The --node names of the real builder's create calls, in order."""
    log = (tmp / "bx.log").read_text().splitlines()
    return [x.split("--node ")[1].split()[0] for x in log if x.startswith("create") and "--name bkf " in x]


def test_the_key_lands_on_its_node_and_the_builder_is_selected(tmp_path: Path) -> None:
    firsts = set()
    for i, key in enumerate(("acme/api", "acme/web", "octo/cat", "x" * 80)):
        tmp = tmp_path / str(i)
        env = {"GITHUB_REPOSITORY": key} if i == 0 else {"BKF_KEY": key}  # default: the repository
        r = run(tmp, stack_outputs(), env)
        assert r.returncode == 0, r.stderr
        want = rank(key, AMD)[0]
        firsts.add(want)
        assert joined(tmp) == [want, "arm64-1"]
        assert (tmp / "github_env").read_text() == f"BUILDX_BUILDER=bkf\nBUILDX_CONFIG={tmp}/runner/buildx\n"
        assert (tmp / "github_output").read_text() == f"builder=bkf\nnodes={want}=linux/amd64 arm64-1=linux/arm64\n"
    assert len(firsts) > 1


def test_a_dead_first_node_is_skipped_and_a_stopped_one_woken(tmp_path: Path) -> None:
    order = rank("acme/api", AMD)
    r = run(tmp_path / "dead", stack_outputs(), down={order[0]})
    assert r.returncode == 0, r.stderr
    assert joined(tmp_path / "dead") == [order[1], "arm64-1"]
    r = run(tmp_path / "stopped", stack_outputs(), stopped={order[0], "arm64-1"})
    assert r.returncode == 0, r.stderr
    starts = [x for x in (tmp_path / "stopped" / "aws.log").read_text().splitlines() if "start-instances" in x]
    assert starts == [f"ec2 start-instances --region eu-west-1 --instance-ids {IDS[order[0]]} i-2"]
    assert joined(tmp_path / "stopped") == [order[0], "arm64-1"]


def test_no_node_of_a_platform_fails_and_selects_nothing(tmp_path: Path) -> None:
    r = run(tmp_path, stack_outputs(), down=set(AMD))
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == "buildkit-farm: no builder: the create script failed (exit 1), " \
                                        "its messages are above"
    assert (tmp_path / "github_env").read_text() == "" and not joined(tmp_path)


def test_the_jobs_platforms_are_checked_against_the_nodes_that_joined(tmp_path: Path) -> None:
    for i, platforms in enumerate(("linux/amd64,linux/arm64", "linux/arm64 linux/amd64", "")):
        r = run(tmp_path / str(i), stack_outputs(), {"BKF_PLATFORMS": platforms})
        assert r.returncode == 0, r.stderr
    tmp = tmp_path / "riscv"
    r = run(tmp, stack_outputs(), {"BKF_PLATFORMS": "linux/amd64,linux/riscv64"})
    want = rank("acme/api", AMD)[0]
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == (
        f"buildkit-farm: platform linux/riscv64 is not built by builder bkf (its nodes: {want}=linux/amd64 "
        "arm64-1=linux/arm64): buildx would send it to the first node, to run emulated or fail; build only the "
        "platforms listed")
    assert (tmp / "github_env").read_text() == ""  # nothing selected
    # an emulated platform (builder.emulate, said by the create script) is claimed, so it passes
    r = run(tmp_path / "emulated", stack_outputs(), {"BKF_PLATFORMS": "linux/arm64", "BKF_EMULATE": "linux/arm64"},
            down={"arm64-1"})
    assert r.returncode == 0, r.stderr
    assert f"nodes={want}=linux/amd64,linux/arm64\n" in (tmp_path / "emulated" / "github_output").read_text()


def test_cert_files_are_0600_and_the_key_is_never_printed(tmp_path: Path) -> None:
    r = run(tmp_path, stack_outputs(), down={rank("acme/api", AMD)[0]})  # a failover prints the most
    assert r.returncode == 0, r.stderr
    certs = tmp_path / "runner" / "buildx" / "certs" / "bkf"
    assert (certs / "key.pem").read_text() == KEY_PEM + "\n" and (certs / "ca.pem").read_text() == "CA PEM\n"
    for f in ("ca.pem", "cert.pem", "key.pem"):
        assert (certs / f).stat().st_mode & 0o777 == 0o600, f
    written = r.stdout + r.stderr + (tmp_path / "github_env").read_text() + (tmp_path / "github_output").read_text()
    assert not any(line in written for line in KEY_LINES)
    assert list((tmp_path / "runner").iterdir()) == [tmp_path / "runner" / "buildx"]  # no script left behind


def test_on_github_the_key_is_masked_before_anything_is_printed(tmp_path: Path) -> None:
    for mode, outputs, env in (("json", stack_outputs(), {}),
                               ("input", {**stack_outputs(), "clientKey": "[secret]"}, {"BKF_TLS_KEY": KEY_PEM})):
        r = run(tmp_path / mode, outputs, {"GITHUB_ACTIONS": "true", **env})
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        masks = [f"::add-mask::{line}" for line in KEY_PEM.splitlines()]
        assert lines[:4] == masks, mode
        assert not any(k in line for line in lines[4:] + r.stderr.splitlines() for k in KEY_LINES), mode


def test_individual_inputs_work_without_outputs_and_win_over_them(tmp_path: Path) -> None:
    o = stack_outputs()
    r = run(tmp_path / "gitlab", None, {"GITHUB_REPOSITORY": "", "CI_PROJECT_PATH": "grp/proj",
                                        "BKF_CREATE_SCRIPT": o["buildxCreateScript"], "BKF_BUILDER": "bkf",
                                        "BKF_TLS_CA": "CA2", "BKF_TLS_CERT": "C2", "BKF_TLS_KEY": KEY_PEM})
    assert r.returncode == 0, r.stderr
    assert joined(tmp_path / "gitlab")[0] == rank("grp/proj", AMD)[0]
    r = run(tmp_path / "both", o, {"BKF_TLS_CA": "CA3"})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "both" / "runner" / "buildx" / "certs" / "bkf" / "ca.pem").read_text() == "CA3\n"


@pytest.mark.parametrize("outputs, env, message", [
    (None, {}, "buildkit-farm: missing the stack output buildxCreateScript: set the input create-script "
               "(BKF_CREATE_SCRIPT) or outputs (BKF_OUTPUTS)"),
    ({"caCert": None}, {}, "buildkit-farm: missing the stack output caCert: set the input ca-cert (BKF_TLS_CA) "
                           "or outputs (BKF_OUTPUTS)"),
    ({"builderName": ""}, {}, "buildkit-farm: missing the stack output builderName: set the input builder-name "
                              "(BKF_BUILDER) or outputs (BKF_OUTPUTS)"),
    ({"clientCert": None}, {}, "buildkit-farm: missing the stack output clientCert: set the input client-cert "
                               "(BKF_TLS_CERT) or outputs (BKF_OUTPUTS)"),
    ({"clientKey": "[secret]"}, {}, "buildkit-farm: missing the client key (stack output clientKey): set the input "
                                    "client-key (BKF_TLS_KEY) or pass outputs from `pulumi stack output --json "
                                    "--show-secrets`"),
    ({}, {"BKF_OUTPUTS": "not json"}, "buildkit-farm: outputs is not a JSON object: pass the whole of "
                                      "`pulumi stack output --json`"),
    ({}, {"BKF_READY_TIMEOUT": "5m"}, "buildkit-farm: ready-timeout must be whole seconds, not '5m'"),
    ({}, {"BKF_BUILDER": "other"}, "buildkit-farm: the create script made no builder named other: builder-name "
                                   "must be the stack output builderName"),
])
def test_a_missing_or_bad_input_is_one_line_and_a_non_zero_exit(tmp_path: Path, outputs: dict[str, Any] | None,
                                                                 env: dict[str, str], message: str) -> None:
    full = None if outputs is None else {**stack_outputs(), **outputs}
    r = run(tmp_path, full, env)
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1] == message
    if "made no builder" not in message:  # refused before the farm is touched
        assert r.stderr == message + "\n" and not (tmp_path / "bx.log").exists()
    assert not any(k in r.stdout + r.stderr for k in KEY_LINES)
    r = run(tmp_path / "gh", full, {"GITHUB_ACTIONS": "true", **env})
    assert r.stderr.splitlines()[-1] == message.replace("buildkit-farm: ", "::error::buildkit-farm: ", 1)
