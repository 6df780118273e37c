"""review.summary: the Markdown a pull request gets from `pulumi preview --json`.

The ssh-* fixtures are REAL previews of the local (SSH) stack on test hosts, captured with
`pulumi preview --json` (and PULUMI_ENABLE_STREAMING_JSON_PREVIEW=true for *-events.jsonl, which
carries the policy pack's findings) after a real `pulumi up`, then trimmed by
tests.support.previews. This machine has no AWS or Kubernetes provider plugin, so AWS and
Kubernetes cases are SYNTHETIC: steps in the same digest shape with the inputs the program
registers (tests/unit/test_policy.py checks those shapes under mocks).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from review import summary
from tests.support.previews import trim

FIXTURES = Path(__file__).parent / "fixtures" / "previews"


def read(name: str) -> summary.Preview:
    return summary.parse((FIXTURES / name).read_text())


def lines(p: summary.Preview) -> list[str]:
    found, other = summary.consequences(p)
    assert other == [], other
    return found


# ---------------------------------------------------------------------------------------------
# real previews of the local stack


def test_no_change() -> None:
    p = read("ssh-none.json")
    assert p.counts == {"same": 23}
    assert summary.consequences(p) == ([], [])
    assert "Nothing changes for the people who build through the farm." in summary.render(p)


def test_volume_size_restarts_every_ssh_node() -> None:
    # ssh nodes have no volume resource: the size sets buildkitd's GC limits in buildkitd.toml
    p = read("ssh-volume.json")
    assert summary.counts_line(p.counts) == "2 to update, 21 unchanged"
    assert sorted(lines(p)) == [
        "node amd64-1 restarts (buildkitd.toml changed): builds running on it are cut",
        "node arm64-1 restarts (buildkitd.toml changed): builds running on it are cut",
    ]


def test_cert_validity_replaces_leaf_certs() -> None:
    p = read("ssh-validity.json")
    assert summary.counts_line(p.counts) == "3 to update, 4 to replace, 16 unchanged"
    assert lines(p) == [
        "CA updated in place (earlyRenewalHours): the certificate itself stays the same",
        "client cert ci replaced (validityPeriodHours): update CI secrets (clientCert; clientCerts.ci if ci is "
        "not the first client)",
        "node arm64-1 restarts (new server certificate): builds running on it are cut",
        "node amd64-1 restarts (new server certificate): builds running on it are cut",
        "buildx builder bkf-rv is recreated on the machine that runs `pulumi up` (its certificates change)",
    ]


def test_streamed_events_give_the_same_lines_and_the_policy_findings() -> None:
    p = read("ssh-validity-events.jsonl")
    assert sorted(lines(p)) == sorted(lines(read("ssh-validity.json")))
    assert p.counts == {"replace": 4, "same": 16, "update": 3}
    assert [(f.level, f.policy) for f in p.policies].count(("advisory", "cert-validity-at-most-a-year")) == 3
    md = summary.render(p)
    assert ("- ⚠️ advisory `cert-validity-at-most-a-year` (pki-client-ci-cert): certificate pki-client-ci-cert is "
            "valid for 17520 h (730 days)") in md
    assert "linux/arm64 has a single node (arm64-1)" in md


def test_a_new_node() -> None:
    p = read("ssh-add-node.json")
    assert summary.counts_line(p.counts) == "7 to create, 1 to replace, 22 unchanged"
    assert lines(p) == [
        "new node amd64-2 (linux/amd64): joins the builder; CI must recreate its builder (re-run "
        "buildxCreateScript, or add the node to setup-buildx-action's `append`)",
        "buildx builder bkf-rv is recreated on the machine that runs `pulumi up` (its nodes change); CI builders "
        "made from buildxCreateScript or setupBuildxAction must be recreated too",
    ]


def test_a_removed_node() -> None:
    p = read("ssh-remove-node.json")
    assert summary.counts_line(p.counts) == "1 to replace, 7 to delete, 15 unchanged"
    assert lines(p)[0] == ("node arm64-1 (linux/arm64) removed: no node may be left for linux/arm64 (then its builds "
                           "fail); CI must recreate its builder; its cache stays on the host")


def test_ca_replaced() -> None:
    p = read("ssh-ca-replace.json")
    assert lines(p) == [
        "CA replaced: every client cert changes; update CI secrets (caCert, clientCert, clientKey)",
        "node amd64-1 restarts (new server certificate): builds running on it are cut",
        "node arm64-1 restarts (new server certificate): builds running on it are cut",
        "buildx builder bkf-rv is recreated on the machine that runs `pulumi up` (its certificates change)",
    ]


def test_a_new_stack() -> None:
    p = read("ssh-new-stack.json")
    assert summary.counts_line(p.counts) == "23 to create"
    assert lines(p) == [
        "new CA: after `up`, give CI the new caCert, clientCert and clientKey",
        "new client cert ci: hand clientCerts.ci and clientKeys.ci to its consumer",
        "new node arm64-1 (linux/arm64): joins the builder; CI must recreate its builder (re-run "
        "buildxCreateScript, or add the node to setup-buildx-action's `append`)",
        "new node amd64-1 (linux/amd64): joins the builder; CI must recreate its builder (re-run "
        "buildxCreateScript, or add the node to setup-buildx-action's `append`)",
        "buildx builder bkf-rv is created on the machine that runs `pulumi up`",
    ]


def test_trimming_keeps_the_summary() -> None:
    for f in FIXTURES.iterdir():
        text = f.read_text()
        assert summary.render(summary.parse(trim(text))) == summary.render(summary.parse(text)), f.name


def test_markdown_layout() -> None:
    md = summary.render(read("ssh-volume.json"), title="Preview of stack rv")
    assert md.startswith("### Preview of stack rv\n\n**2 to update, 21 unchanged**\n\n| operation | resources |")
    assert "| `~` update | 2 |" in md and "**What it means**" in md and "**Other changes**" not in md


# ---------------------------------------------------------------------------------------------
# the command


def test_main_reads_a_path_or_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert summary.main([str(FIXTURES / "ssh-volume.json")]) == 0
    from_path = capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO((FIXTURES / "ssh-volume.json").read_text()))
    assert summary.main([]) == 0
    assert capsys.readouterr().out == from_path
    monkeypatch.setattr("sys.stdin", io.StringIO("not json"))
    assert summary.main(["-"]) == 2
    assert "cannot read the preview" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# SYNTHETIC steps (AWS, Kubernetes): the digest's shape, the program's inputs

STACK = "urn:pulumi:dev::buildkit-farm::"


def step(op: str, typ: str, name: str, parent: tuple[str, str] | None = None, old: dict[str, Any] | None = None,
         new: dict[str, Any] | None = None, diffs: tuple[str, ...] = (), replace: tuple[str, ...] = ()) -> dict:
    chain = f"{parent[0]}${typ}" if parent else typ
    urn = f"{STACK}{chain}::{name}"
    parent_urn = f"{STACK}{parent[0]}::{parent[1]}" if parent else f"{STACK}pulumi:pulumi:Stack::buildkit-farm-dev"
    s: dict[str, Any] = {"op": op, "urn": urn, "diffReasons": list(diffs), "replaceReasons": list(replace),
                         "detailedDiff": {d: {"kind": "update-replace" if d in replace else "update"} for d in diffs}}
    if old is not None:
        s["oldState"] = {"type": typ, "urn": urn, "parent": parent_urn, "inputs": old}
    if new is not None:
        s["newState"] = {"type": typ, "urn": urn, "parent": parent_urn, "inputs": new}
    return s


def preview(*steps: dict) -> summary.Preview:
    counts: dict[str, int] = {}
    for s in steps:
        counts[s["op"]] = counts.get(s["op"], 0) + 1
    return summary.parse(json.dumps({"steps": list(steps), "changeSummary": counts}))


AWS = ("buildkit-farm:index:AwsNode", "amd64-1")
VOLUME = "aws:ebs/volume:Volume"
INSTANCE = "aws:ec2/instance:Instance"
VOL = {"size": 200, "iops": 3000, "encrypted": True, "type": "gp3"}
INST = {"instanceType": "c7i.2xlarge", "ami": "ami-1", "userDataBase64": "H4sI-old",
        "tags": {"buildkit-farm/platform": "linux/amd64"}}


def test_aws_data_volume_replaced_loses_the_cache() -> None:
    p = preview(step("replace", VOLUME, "amd64-1-cache", AWS, VOL, {**VOL, "availabilityZone": "eu-west-1b"},
                     ("availabilityZone",), ("availabilityZone",)),
                step("same", INSTANCE, "amd64-1-instance", AWS, INST, INST))
    assert lines(p) == ["data volume of amd64-1 replaced: its cache is lost"]


def test_aws_instance_replaced_keeps_the_cache_volume() -> None:
    p = preview(step("replace", INSTANCE, "amd64-1-instance", AWS, INST, {**INST, "ami": "ami-2"}, ("ami",), ("ami",)),
                step("same", VOLUME, "amd64-1-cache", AWS, VOL, VOL))
    assert lines(p) == ["instance of amd64-1 replaced (ami), cache volume kept: first build is cold-started; the node "
                        "is down until the new instance boots and builds running on it are cut"]


def test_aws_volume_grows_in_place_and_payload_change_restarts() -> None:
    p = preview(step("update", VOLUME, "amd64-1-cache", AWS, VOL, {**VOL, "size": 300}, ("size",)),
                step("update", INSTANCE, "amd64-1-instance", AWS, INST, {**INST, "userDataBase64": "H4sI-new"},
                     ("userDataBase64",)))
    assert lines(p) == [
        "node amd64-1 restarts (its bootstrap payload changed: the instance stops and starts): builds running on "
        "it are cut",
        "data volume of amd64-1 grows from 200 to 300 GiB in place (size): no restart, the cache stays",
    ]


def test_aws_cert_rotation_through_ssm() -> None:
    p = preview(step("update", "aws:ssm/parameter:Parameter", "amd64-1-cert", AWS, {"value": "a"}, {"value": "b"},
                     ("value",)),
                step("update", "aws:ssm/association:Association", "amd64-1-cert-rotation", AWS, {}, {},
                     ("parameters",)))
    assert lines(p) == ["node amd64-1 restarts (new certificates: SSM runs `bkf-node.sh certs`): builds running on it "
                        "are cut"]


def test_ingress_changed() -> None:
    sg = "aws:ec2/securityGroup:SecurityGroup"
    rule = {"protocol": "tcp", "fromPort": 1234, "toPort": 1234, "cidrBlocks": ["10.20.0.0/16"]}
    wider = {**rule, "cidrBlocks": ["10.20.0.0/16", "203.0.113.0/24"]}
    p = preview(step("update", sg, "amd64-1-sg", AWS, {"ingress": [rule]}, {"ingress": [wider]}, ("ingress",)))
    assert lines(p) == ["ingress changed (SecurityGroup amd64-1-sg, update): who may reach the build port: "
                        "10.20.0.0/16 -> 10.20.0.0/16, 203.0.113.0/24"]
    np = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
    ns = ("buildkit-farm:index:KubernetesFarmNamespace", "farm")
    spec = {"spec": {"ingress": [{"from": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]}]}}
    p = preview(step("update", np, "farm-network-policy", ns, spec, {"spec": {"ingress": [{"from": []}]}}, ("spec",)))
    assert lines(p) == ["ingress changed (NetworkPolicy farm-network-policy, update): who may reach the build port: "
                        "10.20.0.0/16 -> nobody"]


K8S = ("buildkit-farm:index:KubernetesNode", "arm64-1")
STS = "kubernetes:apps/v1:StatefulSet"


def sts(config: str, image: str = "moby/buildkit:v0.32.2-rootless@sha256:aa", drain: bool = True) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "buildkitd", "image": image}
    if drain:
        container["lifecycle"] = {"preStop": {"exec": {"command": ["sh", "-c", "drain"]}}}
    return {"spec": {"template": {
        "metadata": {"annotations": {"buildkit-farm/config-sha256": config, "buildkit-farm/tls-sha256": "t1"}},
        "spec": {"nodeSelector": {"kubernetes.io/arch": "arm64"}, "terminationGracePeriodSeconds": 935,
                 "containers": [container]}}}}


def test_kubernetes_pod_restart_drains() -> None:
    p = preview(step("update", STS, "arm64-1-statefulset", K8S, sts("c1"), sts("c2"), ("spec",)),
                step("update", "kubernetes:core/v1:ConfigMap", "arm64-1-config", K8S, {"data": {}}, {"data": {"x": 1}},
                     ("data",)))
    assert lines(p) == ["node arm64-1 restarts (buildkitd.toml changed): it drains first (builds in flight get up "
                        "to 935 s), then new builds go to the new pod"]
    p = preview(step("update", STS, "arm64-1-statefulset", K8S, sts("c1", drain=False),
                     sts("c1", image="moby/buildkit:v0.33.0-rootless@sha256:bb", drain=False), ("spec",)))
    assert lines(p) == ["node arm64-1 restarts (new image): builds running on it are cut"]


def test_removed_kubernetes_node_keeps_its_pvc_and_another_node_serves_the_platform() -> None:
    k2 = ("buildkit-farm:index:KubernetesNode", "arm64-2")
    p = preview(step("delete", "buildkit-farm:index:KubernetesNode", "arm64-1", None, {}, None),
                step("delete", STS, "arm64-1-statefulset", K8S, sts("c1"), None),
                step("same", "buildkit-farm:index:KubernetesNode", "arm64-2", None, {}, {}),
                step("same", STS, "arm64-2-statefulset", k2, sts("c1"), sts("c1")))
    assert lines(p) == ["node arm64-1 (linux/arm64) removed: builds for linux/arm64 go to arm64-2; CI must recreate "
                        "its builder; its cache PVC is retained"]


def test_unexplained_changes_are_listed_not_dropped() -> None:
    p = preview(step("update", "aws:iam/rolePolicy:RolePolicy", "amd64-1-read-certs", AWS, {"policy": "a"},
                     {"policy": "b"}, ("policy",)))
    assert summary.consequences(p) == ([], ["`amd64-1-read-certs` (RolePolicy): update (policy)"])
    assert "**Other changes**\n\n- `amd64-1-read-certs` (RolePolicy): update (policy)" in summary.render(p)


def test_parts_of_a_replacement_merge_into_one_change() -> None:
    meta = {"urn": f"{STACK}{VOLUME}::v", "type": VOLUME, "diffs": ["availabilityZone"]}
    events: list[dict[str, Any]] = [{"resourcePreEvent": {"metadata": {"op": op, **meta}}}
                                    for op in ("create-replacement", "replace", "delete-replaced")]
    events.append({"summaryEvent": {"resourceChanges": {"replace": 1}, "result": "succeeded"}})
    p = summary.parse("\n".join(json.dumps(e) for e in events))
    assert [(c.op, c.name, c.diffs) for c in p.changes] == [("replace", "v", ("availabilityZone",))]
    assert p.counts == {"replace": 1} and not p.failed


def test_a_failed_preview_with_a_mandatory_violation() -> None:
    events = [{"policyEvent": {"policyName": "nodes-serve-mtls-only", "enforcementLevel": "mandatory",
                               "message": "Every buildkitd serves TCP only with mutual TLS.\ncommand x: plaintext\n",
                               "resourceUrn": f"{STACK}command:remote:Command::x"}},
              {"diagnosticEvent": {"severity": "error", "message": "preview failed"}},
              {"summaryEvent": {"resourceChanges": {"create": 3}, "result": "failed"}}]
    md = summary.render(summary.parse("\n".join(json.dumps(e) for e in events)))
    assert "**The preview failed**" in md
    assert "- ❌ mandatory `nodes-serve-mtls-only` (x): command x: plaintext" in md


def test_empty_input_is_an_error() -> None:
    with pytest.raises(ValueError, match="empty input"):
        summary.parse("  \n")
