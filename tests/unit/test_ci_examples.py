"""The CI examples (examples/ci) are checked, not just shown.

* GitHub workflows: actionlint (built by toolchain/bootstrap.sh from github.com/rhysd/actionlint at
  a pinned version; it checks action inputs and runs shellcheck on every `run:`). A missing
  actionlint fails the test: it is never skipped. Every third-party action is pinned by a full
  commit SHA, its release in a trailing comment.
* GitLab files: they parse, use only keywords GitLab documents (docs.gitlab.com, "CI/CD YAML syntax
  reference"), and their scripts pass shellcheck as POSIX sh.
* Every stack output the examples and the CI action's run.sh name exists in the program's exports
  (read from the source: `export("NAME"` in __main__.py and any module under components/), and the
  keys docs/ci.md reads from setupBuildxAction are the keys the program really exports (the program
  under mocks). The action itself: tests/unit/test_ci_action.py.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "ci"
GITHUB = sorted((EXAMPLES / "github").glob("*.yml"))
GITLAB = sorted((EXAMPLES / "gitlab").glob("*.yml"))

# docs.gitlab.com/ee/ci/yaml/: global keywords, header keywords, and job keywords. `only`/`except`
# are deprecated but documented; image/services/cache/before_script/after_script at the top level
# are documented as deprecated globals.
GITLAB_GLOBAL = {"default", "include", "stages", "variables", "workflow", "spec",
                 "image", "services", "cache", "before_script", "after_script"}
GITLAB_JOB = {"after_script", "allow_failure", "artifacts", "before_script", "cache", "coverage",
              "dast_configuration", "dependencies", "environment", "except", "extends", "hooks", "identity",
              "id_tokens", "image", "inherit", "interruptible", "manual_confirmation", "needs", "only", "pages",
              "parallel", "release", "resource_group", "retry", "rules", "script", "secrets", "services", "stage",
              "tags", "timeout", "trigger", "variables", "when"}
# `default:` takes these job keywords
GITLAB_DEFAULT = {"after_script", "artifacts", "before_script", "cache", "hooks", "id_tokens", "image",
                  "interruptible", "retry", "services", "tags", "timeout"}
GITLAB_RULE = {"if", "changes", "exists", "when", "allow_failure", "needs", "variables", "interruptible"}
GITLAB_ARTIFACTS = {"paths", "exclude", "expire_in", "expose_as", "name", "public", "access", "reports",
                    "untracked", "when"}
GITLAB_ENVIRONMENT = {"name", "url", "on_stop", "action", "auto_stop_in", "kubernetes", "deployment_tier"}


def actionlint() -> str:
    exe = shutil.which("actionlint")
    if exe is None:
        pytest.fail("actionlint is not on PATH: run toolchain/bootstrap.sh and source .toolchain/env.sh")
    return exe


def test_actionlint_passes_on_the_github_workflows() -> None:
    assert [p.name for p in GITHUB] == ["app.yml", "infra.yml"]
    r = subprocess.run([actionlint(), "-color=false", *map(str, GITHUB)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_actionlint_really_checks_inputs_and_scripts(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  b:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - uses: docker/setup-buildx-action@v4\n        with:\n          driver-opt: x\n"
                   "      - run: echo $UNQUOTED\n")
    r = subprocess.run([actionlint(), "-color=false", str(bad)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    assert 'input "driver-opt" is not defined in action "docker/setup-buildx-action@v4"' in r.stdout
    assert "SC2086" in r.stdout, r.stdout


USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", re.M)
PINNED = re.compile(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}")
RELEASE_COMMENT = re.compile(r"\s+# v\d+(\.\d+)*\s*$")
#: this project's own action, as the examples name it: there is no published owner or release yet,
#: so the owner and the all-zero commit are placeholders the example's comment tells users to replace;
#: no third-party action may use them
OWN_ACTION = "example-org/buildkit-farm/"
PLACEHOLDER_SHA = "0" * 40


def unpinned_actions(text: str) -> list[str]:
    """Every `uses:` of a third-party action not pinned by a full commit SHA with its release in a
    trailing comment (`owner/repo@<40 hex> # vX.Y.Z`); local actions (./) are the repository's own."""
    bad = []
    for ref, rest in USES.findall(text):
        if ref.startswith("./"):
            continue
        misplaced = ref.endswith("@" + PLACEHOLDER_SHA) != ref.startswith(OWN_ACTION)
        if misplaced or not PINNED.fullmatch(ref) or not RELEASE_COMMENT.fullmatch(rest):
            bad.append(f"{ref}{rest}")
    return bad


def test_third_party_actions_are_pinned_by_commit_sha() -> None:
    uses = [u for p in GITHUB for u in USES.findall(p.read_text())]
    assert len(uses) == 12  # every step that uses an action was seen
    assert {p.name: unpinned_actions(p.read_text()) for p in GITHUB} == {"app.yml": [], "infra.yml": []}


def test_the_pin_check_refuses_tags_short_shas_and_missing_versions() -> None:
    text = """steps:
      - uses: actions/checkout@v5
      - uses: actions/checkout@fbc6f39
      - uses: actions/checkout@fbc6f3992d24b796d5a048ff273f7fcc4a7b6c09
      - uses: actions/checkout@main # v5.1.0
      - name: x
        uses: docker/login-action@4907a6ddec9925e35a0a9e82d7399ccc52663121 # v4.1.0
      - uses: ./.github/actions/local
      - uses: docker/login-action@0000000000000000000000000000000000000000 # v4.1.0
      - uses: example-org/buildkit-farm/.github/actions/buildkit-farm@0000000000000000000000000000000000000000 # v0.2.0
"""
    assert unpinned_actions(text) == ["actions/checkout@v5", "actions/checkout@fbc6f39",
                                      "actions/checkout@fbc6f3992d24b796d5a048ff273f7fcc4a7b6c09",
                                      "actions/checkout@main # v5.1.0",
                                      "docker/login-action@0000000000000000000000000000000000000000 # v4.1.0"]


def test_unreviewed_code_never_gets_the_keys_and_the_client_key_reaches_only_building_repos() -> None:
    infra = yaml.safe_load((EXAMPLES / "github" / "infra.yml").read_text())
    # secrets only in jobs that run in an environment (its required reviewers gate the run)
    assert "secrets." not in json.dumps(infra.get("env", {}))
    for name, job in infra["jobs"].items():
        if "secrets." in json.dumps(job):
            assert job.get("environment") in ("buildkit-farm-preview", "buildkit-farm"), name
    assert infra["jobs"]["preview"]["environment"] == "buildkit-farm-preview"
    publish = infra["jobs"]["up"]["steps"][-1]["run"]
    sets = re.findall(r"gh (?:secret|variable) set \S+ (.*)", publish)
    assert len(sets) == 6 and all(s == '"${scope[@]}"' for s in sets), sets
    assert 'scope=(--org "$ORG" --visibility selected --repos "$REPOS")' in publish
    gitlab = yaml.safe_load((EXAMPLES / "gitlab" / "infra.gitlab-ci.yml").read_text())
    assert [r["if"] for r in gitlab["preview"]["rules"]] == [
        '$CI_PIPELINE_SOURCE == "merge_request_event" && $CI_MERGE_REQUEST_SOURCE_BRANCH_PROTECTED == "true"']
    assert "put BKF_TLS_KEY env_var true key.pem" in gitlab["up"]["script"][1]


def gitlab_problems(doc: Any) -> list[str]:
    """Keys the GitLab CI/CD YAML reference does not document."""
    if not isinstance(doc, dict):
        return ["not a mapping"]
    problems = []
    for key, value in doc.items():
        if key in GITLAB_GLOBAL:
            if key == "default":
                problems += [f"default.{k}" for k in value if k not in GITLAB_DEFAULT]
            continue
        if not isinstance(value, dict):
            problems.append(f"{key}: neither a global keyword nor a job")
            continue
        if not (key.startswith(".") or {"script", "trigger", "extends", "run"} & set(value)):
            problems.append(f"{key}: a job needs script, trigger or extends")
        problems += [f"{key}.{k}" for k in value if k not in GITLAB_JOB]
        for i, rule in enumerate(value.get("rules") or []):
            problems += [f"{key}.rules[{i}].{k}" for k in rule if k not in GITLAB_RULE]
        problems += [f"{key}.artifacts.{k}" for k in value.get("artifacts") or {} if k not in GITLAB_ARTIFACTS]
        env = value.get("environment")
        if isinstance(env, dict):
            problems += [f"{key}.environment.{k}" for k in env if k not in GITLAB_ENVIRONMENT]
    return problems


def test_gitlab_files_parse_and_use_only_documented_keywords() -> None:
    assert [p.name for p in GITLAB] == ["app.gitlab-ci.yml", "buildkit-farm.gitlab-ci.yml", "infra.gitlab-ci.yml"]
    for path in GITLAB:
        doc = yaml.safe_load(path.read_text())
        assert gitlab_problems(doc) == [], path.name
        # hidden jobs (.name: a template's, for `extends:`) take the stage of the job that extends them
        jobs = [k for k, v in doc.items() if k not in GITLAB_GLOBAL and isinstance(v, dict) and k[0] != "."]
        hidden = [k for k in doc if k.startswith(".")]
        assert (jobs or hidden) and all(doc[j]["stage"] in doc["stages"] for j in jobs), path.name


def test_the_gitlab_keyword_check_catches_mistakes() -> None:
    doc = {"stages": ["b"], "stage": "b", "build": {"scripts": ["x"], "rules": [{"iff": "$X"}]},
           "default": {"stage": "b"}}
    assert sorted(gitlab_problems(doc)) == ["build.rules[0].iff", "build.scripts",
                                            "build: a job needs script, trigger or extends", "default.stage",
                                            "stage: neither a global keyword nor a job"]


def test_gitlab_scripts_pass_shellcheck(tmp_path: Path) -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck is not on PATH: run toolchain/bootstrap.sh")
    for path in GITLAB:
        doc = yaml.safe_load(path.read_text())
        default = doc.get("default") or {}
        for name, job in doc.items():
            # a template's hidden job may hold only a before_script
            if not isinstance(job, dict) or not {"script", "before_script"} & set(job):
                continue
            lines = [*job.get("before_script", default.get("before_script", [])), *job.get("script", [])]
            script = tmp_path / f"{path.stem}-{name}.sh"
            script.write_text("#!/bin/sh\nset -eu\n" + "\n".join(lines) + "\n")
            r = subprocess.run([shellcheck, "-s", "sh", str(script)], capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, f"{path.name} job {name}:\n{r.stdout}"


# ---------------------------------------------------------------------------------------------
# the output names the examples use


def program_exports() -> set[str]:
    sources = [ROOT / "__main__.py", *sorted((ROOT / "components").rglob("*.py"))]
    return {m for p in sources for m in re.findall(r"""export\(\s*["'](\w+)["']""", p.read_text())}


def referenced_outputs() -> dict[str, set[str]]:
    """stack output name -> the example files that name it ("stack output NAME", in commands and comments)."""
    out: dict[str, set[str]] = {}
    for p in [*GITHUB, *GITLAB]:
        for name in re.findall(r"stack output ([A-Za-z][A-Za-z0-9]*)", p.read_text()):
            out.setdefault(name, set()).add(p.name)
    return out


def setup_buildx_step() -> dict[str, Any]:
    """The docker/setup-buildx-action step docs/ci.md shows (the way without the farm's action)."""
    ci = (ROOT / "docs" / "ci.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", ci, re.S) if "docker/setup-buildx-action" in b)
    step: dict[str, Any] = yaml.safe_load(block)[0]
    return step


def test_every_output_the_examples_name_is_exported() -> None:
    exports = program_exports()
    assert {"builderName", "setupBuildxAction", "buildxCreateScript", "caCert", "clientCert", "clientKey",
            "certExpiry"} <= exports, exports
    used = referenced_outputs()
    assert {"setupBuildxAction", "buildxCreateScript", "builderName", "caCert", "clientCert",
            "clientKey"} <= set(used), used
    unknown = {name: files for name, files in used.items() if name not in exports}
    assert unknown == {}, f"outputs the program does not export: {unknown}"


def test_the_setup_buildx_keys_are_the_real_ones(tmp_path: Path) -> None:
    mockrt: Any = importlib.import_module("tests.unit.mockrt")  # by name: mypy checks this file only
    cfg = mockrt.stack_config(ROOT / "Pulumi.local.yaml")
    (tmp_path / "id").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nMOCK\n-----END OPENSSH PRIVATE KEY-----\n")
    (tmp_path / "buildkit-v0.32.2.linux-amd64.tar.gz").write_bytes(b"tarball")
    cfg["buildkit-farm:ssh"] = json.dumps({"privateKeyPath": str(tmp_path / "id"), "artifactDir": str(tmp_path)})
    real = mockrt.run_main(cfg, stack="local").values["setupBuildxAction"]
    step = setup_buildx_step()
    used = set(step["with"])
    assert used == {"driver", "endpoint", "platforms", "driver-opts", "append"}, used
    assert used <= set(real), set(real)
    assert real["driver"] == step["with"]["driver"] == "remote"
    # the env names the docs set are the ones setupBuildxAction.env names, each from the output it maps to
    docs = (ROOT / "docs" / "ci.md").read_text()
    assert set(step["env"]) <= set(real["env"]) and len(step["env"]) == 6, (set(real["env"]), set(step["env"]))
    for name, output in real["env"].items():
        if name.startswith("BUILDER_NODE_0_"):
            assert re.search(rf"^\s+{name}: .*# {output}$", docs, re.M), (name, output)


def test_the_outputs_the_ci_action_reads_are_exported() -> None:
    run_sh = (ROOT / ".github" / "actions" / "buildkit-farm" / "run.sh").read_text()
    read = set(re.findall(r"\$\(field (\w+)\)", run_sh))
    assert read == {"buildxCreateScript", "builderName", "caCert", "clientCert", "clientKey"}
    assert read <= program_exports()
