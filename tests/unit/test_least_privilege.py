"""Least privilege of the AWS stack, evaluated: each node role's EFFECTIVE permissions over every
policy the program attaches to it (inline documents as rendered, managed ones from their pinned
published documents in fixtures/iam), and the CI wake policy the stack exports.

review.iam decides each request (explicit Deny > Allow > implicit deny); the table of cases is
printed (also under -q) so a reviewer reads what each role can and cannot do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from review.iam import Request, evaluate
from tests.unit import mockrt

DEV = mockrt.stack_config(mockrt.ROOT / "Pulumi.dev.yaml")
REGION, ACCOUNT, STACK = "eu-west-1", "111122223333", "dev"
FIXTURES = Path(__file__).parent / "fixtures" / "iam"
#: the aws/ssm key's ARN shape (its id is the account's own; any id will do: the policies name none)
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
VIA_SSM = f"ssm.{REGION}.amazonaws.com"
FOREIGN = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/prod/db"  # a SecureString outside the farm


def managed_policies() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(FIXTURES.glob("*.json")):
        pinned = json.loads(path.read_text())
        assert pinned["IsDefaultVersion"] and pinned["VersionId"] and pinned["Source"], path
        out[pinned["PolicyArn"]] = pinned["Document"]
    return out


MANAGED = managed_policies()


@pytest.fixture(scope="module")
def dev() -> mockrt.Run:
    return mockrt.run_main(DEV)


def role_policies(run: mockrt.Run, node: str) -> list[dict[str, Any]]:
    """Every policy document attached to the node's role: inline and managed (by pinned fixture)."""
    role = mockrt.short(run.named(f"{node}-role").name)
    mine = {role, f"{role}-id"}  # mocks: name and id of the role
    inline = [json.loads(r.inputs["policy"]) for r in run.of_type("aws:iam/rolePolicy:RolePolicy")
              if r.inputs["role"] in mine]
    arns = [r.inputs["policyArn"] for r in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
            if r.inputs["role"] in mine]
    unknown = [a for a in arns if a not in MANAGED]
    assert not unknown, f"no pinned document for managed policies {unknown}: add one to {FIXTURES}"
    assert inline and arns  # the node's role holds both kinds today; a rename must not empty this test
    return inline + [MANAGED[a] for a in arns]


def param(node: str, name: str) -> str:
    return f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/buildkit-farm/{STACK}/{node}/{name}"


def decrypt(parameter_arn: str | None, via: str | None = VIA_SSM) -> Request:
    ctx = {k: v for k, v in (("kms:ViaService", via), ("kms:EncryptionContext:PARAMETER_ARN", parameter_arn))
           if v is not None}
    return Request("kms:Decrypt", KMS_KEY, ctx)


def node_cases(node: str, other: str) -> Iterator[tuple[str, Request, bool]]:
    for name in ("ca", "cert", "key"):
        yield f"read own {name}", Request("ssm:GetParameter", param(node, name)), True
    yield "decrypt own key via SSM", decrypt(param(node, "key")), True
    yield f"read {other}'s key", Request("ssm:GetParameter", param(other, "key")), False
    yield f"read {other}'s key (GetParameters)", Request("ssm:GetParameters", param(other, "key")), False
    yield f"decrypt {other}'s key via SSM", decrypt(param(other, "key")), False
    yield "read the farm's tree (GetParametersByPath)", Request(
        "ssm:GetParametersByPath", f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/buildkit-farm/{STACK}"), False
    yield "read a foreign parameter", Request("ssm:GetParameter", FOREIGN), False
    yield "read own key's history", Request("ssm:GetParameterHistory", param(node, "key")), False
    yield "decrypt a foreign SecureString via SSM", decrypt(FOREIGN), False
    yield "decrypt without a parameter (direct)", decrypt(None, via=None), False
    yield "Session Manager (ssmmessages:OpenDataChannel)", Request("ssmmessages:OpenDataChannel", "*"), True
    yield "Run Command (ec2messages:GetMessages)", Request("ec2messages:GetMessages", "*"), True
    yield "report association status", Request("ssm:UpdateInstanceAssociationStatus", "*"), True
    yield "start an instance", Request("ec2:StartInstances", f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/i-0a"), False


def show(title: str, rows: list[tuple[str, str, bool]], capsys: pytest.CaptureFixture[str]) -> None:
    width = max(len(r[0]) for r in rows)
    with capsys.disabled():
        print(f"\n{title}")
        for case, decision, ok in rows:
            print(f"  {case:<{width}}  {decision}{'' if ok else '   <-- UNEXPECTED'}")


def test_each_node_role_reads_and_decrypts_only_its_own_parameters(dev: mockrt.Run,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    failures = []
    for node, other in (("arm64-1", "amd64-1"), ("amd64-1", "arm64-1")):
        policies = role_policies(dev, node)
        rows = []
        for case, request, want in node_cases(node, other):
            got = evaluate(policies, request)
            rows.append((case, got.value, got.allowed == want))
            if got.allowed != want:
                failures.append(f"{node}: {case}: {got.value}")
        show(f"node role {node} (inline + AmazonSSMManagedInstanceCore v2)", rows, capsys)
    assert not failures


def test_the_ci_wake_policy_starts_exactly_the_farms_instances(capsys: pytest.CaptureFixture[str]) -> None:
    run = mockrt.run_main(mockrt.with_section(DEV, "idleStop", afterMinutes=30))
    policy = json.loads(run.values["ciWakePolicy"])
    ids = sorted(r.inputs.get("id") or f"{mockrt.short(r.name)}-id" for r in run.of_type("aws:ec2/instance:Instance"))
    assert len(ids) == 2

    def inst(i: str) -> str:
        return f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{i}"

    cases = [(f"start farm instance {i}", Request("ec2:StartInstances", inst(i)), True) for i in ids]
    cases += [
        ("start a foreign instance", Request("ec2:StartInstances", inst("i-0123456789abcdef0")), False),
        (f"start {ids[0]}x (a farm id as prefix)", Request("ec2:StartInstances", inst(f"{ids[0]}x")), False),
        ("start a farm instance in another region",
         Request("ec2:StartInstances", f"arn:aws:ec2:us-east-1:{ACCOUNT}:instance/{ids[0]}"), False),
        ("stop a farm instance", Request("ec2:StopInstances", inst(ids[0])), False),
        ("terminate a farm instance", Request("ec2:TerminateInstances", inst(ids[0])), False),
        ("describe instances", Request("ec2:DescribeInstances", "*"), True),
        ("read a node's key", Request("ssm:GetParameter", param("arm64-1", "key")), False),
    ]
    rows = []
    for case, request, want in cases:
        got = evaluate([policy], request)
        rows.append((case, got.value, got.allowed == want))
    show("CI wake policy (ciWakePolicy export)", rows, capsys)
    assert all(ok for _, _, ok in rows), rows
