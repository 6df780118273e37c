"""Tier 3 for reviews: the policy pack and the review summary on real previews.

A real `pulumi up` of the SSH stack (Pulumi.local.yaml pointed at its own test hosts h7/h8, own
builder, temporary file backend) with the policy pack, then real `pulumi preview --json` runs
after config changes (volume size, cert validity, a new node, a removed node), each turned into
the review summary; and a deliberately bad stack (tests/e2e/bad_farm) whose preview the pack
must stop. Destroy, stack removal and hosts down run in teardown, also after a failure.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness.farm import Farm, running_farm
from harness.hosts import ROOT, need, run, running_hosts
from harness.stack import init_salt
from review import summary
from tests.support.figures import print_past_capture
from tests.support.previews import trim

pytestmark = pytest.mark.e2e

STACK = "review"
HOSTS = {"h7": "amd64-1", "h8": "arm64-1"}
BUILDER = "bkf-review"
POLICY_PACK = ROOT / "review" / "policy" / "run"
POLICY_VENV = ROOT / ".policy-venv"


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Farm]:
    need("pulumi", "pulumi-language-python", "buildkitd", "buildctl", "docker-buildx", "ssh")
    if not (POLICY_VENV / "bin" / "python").exists():
        pytest.fail(f"no policy venv at {POLICY_VENV}: run toolchain/bootstrap.sh")
    t0 = time.monotonic()
    d = tmp_path_factory.mktemp("review")
    with running_hosts(list(HOSTS), d / "state") as hs:
        try:
            with running_farm(hs, STACK, d, HOSTS, BUILDER, config=d / "base.yaml", up=False) as f:
                # the nodes this test names, in its order (the local farm's spare amd64-2 is left out)
                assert [n["name"] for n in f.stack.read_config()["buildkit-farm:nodes"]] == list(HOSTS.values())
                yield f
        finally:
            # the CI time this file adds
            took = time.monotonic() - t0
            print_past_capture(request, f"tests/e2e/test_review.py: {took:.1f} s from hosts up to teardown")


def test_up_with_the_policy_pack_passes(farm: Farm) -> None:
    r = farm.pulumi("up", "--yes", "--skip-preview", "--policy-pack", str(POLICY_PACK))
    out = r.stdout + r.stderr
    assert re.search(r"Resources:\s+\+ \d+ created", r.stdout), out[-3000:]
    assert "buildkit-farm@v0.1.0" in out and "[mandatory]" not in out, out[-3000:]
    # the advisory each single-node platform gets
    assert "linux/arm64 has a single node (arm64-1)" in out, out[-3000:]


def summary_of(farm: Farm, config: Path) -> tuple[summary.Preview, str]:
    r = farm.pulumi("preview", "--json", config=config)
    # the committed fixtures are trimmed previews: trimming must not change what the summary says
    assert summary.render(summary.parse(trim(r.stdout))) == summary.render(summary.parse(r.stdout))
    return summary.parse(r.stdout), r.stdout


def consequences(p: summary.Preview) -> list[str]:
    found, other = summary.consequences(p)
    assert other == [], other
    return sorted(found)


def test_previews_say_what_a_change_means(farm: Farm) -> None:
    same, _ = summary_of(farm, farm.stack.config)
    state = run(["pulumi", "stack", "export", "--stack", STACK], cwd=ROOT, env=farm.env).stdout
    made = [r for r in json.loads(state)["deployment"]["resources"] if not r["type"].startswith("pulumi:providers:")]
    assert summary.counts_line(same.counts) == f"{len(made)} unchanged" and consequences(same) == []

    vol = farm.stack.variant("volume", lambda c: c["buildkit-farm:volume"].update(sizeGb=30))
    p, _ = summary_of(farm, vol)
    assert consequences(p) == [f"node {n} restarts (buildkitd.toml changed): builds running on it are cut"
                               for n in ("amd64-1", "arm64-1")]

    validity = farm.stack.variant("validity", lambda c: c["buildkit-farm:pki"].update(validityHours=17520))
    p, _ = summary_of(farm, validity)
    assert consequences(p) == sorted([
        "CA updated in place (earlyRenewalHours): the certificate itself stays the same",
        "client cert ci replaced (validityPeriodHours): update CI secrets (clientCert; clientCerts.ci if ci is "
        "not the first client)",
        *(f"node {n} restarts (new server certificate): builds running on it are cut" for n in ("amd64-1", "arm64-1")),
        f"buildx builder {BUILDER} is recreated on the machine that runs `pulumi up` (its certificates change)",
    ])

    # never dialled: a preview only plans (the address is TEST-NET-1)
    new = farm.stack.variant("add-node", lambda c: c["buildkit-farm:nodes"].append(
        {"name": "amd64-2", "platform": "linux/amd64", "host": "192.0.2.19"}))
    p, _ = summary_of(farm, new)
    assert summary.counts_line(p.counts) == f"7 to create, 1 to replace, {len(made) - 1} unchanged"
    assert consequences(p) == [
        f"buildx builder {BUILDER} is recreated on the machine that runs `pulumi up` (its nodes change); CI builders "
        "made from buildxCreateScript or setupBuildxAction must be recreated too",
        "new node amd64-2 (linux/amd64): joins the builder; CI must recreate its builder (re-run "
        "buildxCreateScript, or add the node to setup-buildx-action's `append`)",
    ]

    gone = farm.stack.variant("remove-node", lambda c: c["buildkit-farm:nodes"].pop())
    p, _ = summary_of(farm, gone)
    assert summary.counts_line(p.counts) == f"1 to replace, 7 to delete, {len(made) - 8} unchanged"
    assert "node arm64-1 (linux/arm64) removed: no node may be left for linux/arm64 (then its builds fail); CI " \
           "must recreate its builder; its cache stays on the host" in consequences(p)


def test_the_streamed_preview_carries_the_policy_findings(farm: Farm) -> None:
    validity = farm.stack.variant("validity-events", lambda c: c["buildkit-farm:pki"].update(validityHours=17520))
    r = farm.pulumi("preview", "--json", "--policy-pack", str(POLICY_PACK), config=validity,
                    env={"PULUMI_ENABLE_STREAMING_JSON_PREVIEW": "true"})
    md = summary.render(summary.parse(r.stdout))
    assert "node amd64-1 restarts (new server certificate)" in md
    assert "- ⚠️ advisory `cert-validity-at-most-a-year` (pki-server-arm64-1-cert): certificate " \
           "pki-server-arm64-1-cert is valid for 17520 h (730 days)" in md, md
    assert "❌" not in md


def test_a_bad_stack_is_stopped_by_the_mandatory_policies(farm: Farm) -> None:
    project = farm.dir / "bad_farm"
    shutil.copytree(ROOT / "tests" / "e2e" / "bad_farm", project)
    spec = yaml.safe_load((project / "Pulumi.yaml").read_text())
    spec["runtime"]["options"]["virtualenv"] = str(ROOT / ".venv")
    (project / "Pulumi.yaml").write_text(yaml.safe_dump(spec))
    salt = init_salt(STACK, project, farm.dir, farm.env)
    (project / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"encryptionsalt": salt}))
    args = ["pulumi", "preview", "--stack", STACK, "--non-interactive", "--policy-pack", str(POLICY_PACK)]
    try:
        r = run(args, cwd=project, env=farm.env, check=False, timeout=600)
        out = r.stdout + r.stderr
        assert r.returncode != 0, out[-3000:]
        assert re.search(r"\[mandatory\]\s+nodes-serve-mtls-only\s+\(command:remote:Command: plain-1-buildkitd\)",
                         out), out[-3000:]
        assert "buildkitd.toml serves tcp://0.0.0.0:1234 without mutual TLS: [grpc.tls] cert, key, ca missing" in out
        assert re.search(r"\[mandatory\]\s+no-insecure-entitlements", out)
        assert "stack output clientKey holds a private key in plain text" in out
        streamed = run([*args, "--json"], cwd=project, env={**farm.env, "PULUMI_ENABLE_STREAMING_JSON_PREVIEW": "true"},
                       check=False, timeout=600)
        assert streamed.returncode != 0
        md = summary.render(summary.parse(streamed.stdout))
        assert "**The preview failed**" in md and "- ❌ mandatory `nodes-serve-mtls-only` (plain-1-buildkitd)" in md
    finally:
        run(["pulumi", "stack", "rm", STACK, "--yes", "--force", "--non-interactive"], cwd=project, env=farm.env,
            check=False)
