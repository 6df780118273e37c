"""review.iam against AWS's documented evaluation rules for identity-based policies.

Rules and examples from:
* Policy evaluation logic (explicit deny > allow > implicit deny, across all policies):
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
* IAM JSON policy elements: Action / NotAction / Resource / NotResource (wildcards `*` and `?`,
  actions case-insensitive, ARN parts matched one by one):
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notaction.html,
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html
* Condition element and operators (keys ANDed, a key's values ORed, a missing key fails a positive
  operator and may satisfy a negated one, ...IfExists, Null):
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html,
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-logic-multiple-context-keys-or-values.html
"""

from __future__ import annotations

from typing import Any

import pytest

from review.iam import Decision, Request, UnsupportedPolicy, arn_matches, evaluate

BUCKET = "arn:aws:s3:::amzn-s3-demo-bucket"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def test_no_policy_and_no_matching_statement_is_an_implicit_deny() -> None:
    req = Request("s3:GetObject", f"{BUCKET}/a")
    assert evaluate([], req) is Decision.IMPLICIT_DENY
    assert evaluate([policy(allow("s3:PutObject"))], req) is Decision.IMPLICIT_DENY


def test_an_explicit_deny_in_any_policy_overrides_an_allow_in_another() -> None:
    req = Request("s3:GetObject", f"{BUCKET}/a")
    assert evaluate([policy(allow("s3:*"))], req) is Decision.ALLOW
    assert evaluate([policy(allow("s3:*")), policy(deny("s3:GetObject", f"{BUCKET}/*"))], req) \
        is Decision.EXPLICIT_DENY
    # order does not matter
    assert evaluate([policy(deny("s3:GetObject", f"{BUCKET}/*")), policy(allow("s3:*"))], req) \
        is Decision.EXPLICIT_DENY


def test_actions_are_case_insensitive_and_take_both_wildcards() -> None:
    p = [policy(allow(["SSM:getparameter", "ec2:Describe*", "iam:?etUser"]))]
    assert evaluate(p, Request("ssm:GetParameter", "*")).allowed
    assert evaluate(p, Request("ec2:DescribeInstances", "*")).allowed
    assert evaluate(p, Request("iam:GetUser", "*")).allowed
    assert not evaluate(p, Request("ssm:GetParameters", "*")).allowed  # no implicit prefix match
    assert not evaluate(p, Request("ec2:StartInstances", "*")).allowed
    assert not evaluate(p, Request("iam:ForgetUser", "*")).allowed  # `?` is exactly one character


def test_not_action_with_allow_grants_everything_else() -> None:
    # The NotAction page's example: everything except IAM.
    p = [policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})]
    assert evaluate(p, Request("s3:GetObject", f"{BUCKET}/a")).allowed
    assert evaluate(p, Request("iam:CreateUser", "*")) is Decision.IMPLICIT_DENY


def test_not_resource_with_deny_denies_everything_but_the_listed_resources() -> None:
    p = [policy(allow("s3:*"), {"Effect": "Deny", "Action": "s3:*", "NotResource": [BUCKET, f"{BUCKET}/*"]})]
    assert evaluate(p, Request("s3:GetObject", f"{BUCKET}/a")).allowed
    assert evaluate(p, Request("s3:GetObject", "arn:aws:s3:::other/a")) is Decision.EXPLICIT_DENY


def test_resources_are_case_sensitive_and_matched_part_by_part() -> None:
    assert arn_matches("arn:aws:ssm:eu-west-1:*:parameter/a/b", "arn:aws:ssm:eu-west-1:123456789012:parameter/a/b")
    assert not arn_matches("arn:aws:ssm:eu-west-1:*:parameter/a/b", "arn:aws:ssm:eu-west-1:1:parameter/A/b")
    # a `*` in the account part does not reach into the resource part
    assert not arn_matches("arn:aws:ssm:eu-west-1:*:parameter/a", "arn:aws:ssm:eu-west-1:1:x:parameter/a")
    # the resource part may hold colons, and `*` there spans slashes
    assert arn_matches("arn:aws:logs:*:*:log-group:g:*", "arn:aws:logs:eu-west-1:1:log-group:g:log-stream:s")
    assert arn_matches("arn:aws:s3:::b/*", "arn:aws:s3:::b/x/y")
    assert arn_matches("arn:aws:ec2:*:*:instance/i-?", "arn:aws:ec2:r:1:instance/i-a")
    assert not arn_matches("arn:aws:ec2:*:*:instance/i-a", "arn:aws:ec2:r:1:instance/i-ab")
    assert arn_matches("*", "anything")


def test_condition_keys_are_anded_and_values_ored() -> None:
    cond = {"StringEquals": {"aws:RequestedRegion": ["eu-west-1", "eu-central-1"], "aws:PrincipalTag/team": "a"}}
    p = [policy(allow("ec2:*", Condition=cond))]
    both = {"aws:RequestedRegion": "eu-central-1", "aws:PrincipalTag/team": "a"}
    assert evaluate(p, Request("ec2:RunInstances", "*", both)).allowed
    assert not evaluate(p, Request("ec2:RunInstances", "*", {**both, "aws:RequestedRegion": "us-east-1"})).allowed
    assert not evaluate(p, Request("ec2:RunInstances", "*", {"aws:RequestedRegion": "eu-west-1"})).allowed


def test_condition_key_names_are_case_insensitive_values_are_not() -> None:
    p = [policy(allow("kms:Decrypt", Condition={"StringEquals": {"kms:ViaService": "ssm.eu-west-1.amazonaws.com"}}))]
    assert evaluate(p, Request("kms:Decrypt", "*", {"KMS:VIASERVICE": "ssm.eu-west-1.amazonaws.com"})).allowed
    assert not evaluate(p, Request("kms:Decrypt", "*", {"kms:ViaService": "SSM.eu-west-1.amazonaws.com"})).allowed


def test_a_missing_key_fails_a_positive_operator_and_satisfies_a_negated_one() -> None:
    like = [policy(allow("s3:GetObject", Condition={"StringLike": {"s3:prefix": "home/*"}}))]
    assert not evaluate(like, Request("s3:GetObject", "*")).allowed
    not_like = [policy(allow("s3:*"), deny("s3:GetObject", Condition={"StringNotLike": {"s3:prefix": "home/*"}}))]
    assert evaluate(not_like, Request("s3:GetObject", "*")) is Decision.EXPLICIT_DENY
    assert evaluate(not_like, Request("s3:GetObject", "*", {"s3:prefix": "home/me"})).allowed
    assert evaluate(not_like, Request("s3:GetObject", "*", {"s3:prefix": "etc"})) is Decision.EXPLICIT_DENY


def test_if_exists_holds_when_the_key_is_absent() -> None:
    p = [policy(allow("ec2:*", Condition={"StringEqualsIfExists": {"ec2:InstanceType": "t3.micro"}}))]
    assert evaluate(p, Request("ec2:StartInstances", "*")).allowed
    assert evaluate(p, Request("ec2:RunInstances", "*", {"ec2:InstanceType": "t3.micro"})).allowed
    assert not evaluate(p, Request("ec2:RunInstances", "*", {"ec2:InstanceType": "m5.24xlarge"})).allowed


def test_null_bool_and_arn_operators() -> None:
    null = [policy(allow("s3:*", Condition={"Null": {"aws:TokenIssueTime": "false"}}))]
    assert evaluate(null, Request("s3:GetObject", "*", {"aws:TokenIssueTime": "t"})).allowed
    assert not evaluate(null, Request("s3:GetObject", "*")).allowed
    mfa = [policy(allow("s3:*", Condition={"Bool": {"aws:MultiFactorAuthPresent": "true"}}))]
    assert evaluate(mfa, Request("s3:GetObject", "*", {"aws:MultiFactorAuthPresent": "true"})).allowed
    assert not evaluate(mfa, Request("s3:GetObject", "*", {"aws:MultiFactorAuthPresent": "false"})).allowed
    src = [policy(allow("sqs:SendMessage", Condition={"ArnLike": {"aws:SourceArn": "arn:aws:sns:*:*:topic"}}))]
    assert evaluate(src, Request("sqs:SendMessage", "*", {"aws:SourceArn": "arn:aws:sns:eu-west-1:1:topic"})).allowed
    assert not evaluate(src, Request("sqs:SendMessage", "*", {"aws:SourceArn": "arn:aws:sns:eu-west-1:1:x"})).allowed


@pytest.mark.parametrize("bad", [
    policy(allow("s3:*", Condition={"NumericLessThan": {"s3:max-keys": "10"}})),
    policy(allow("s3:*", Condition={"ForAnyValue:StringEquals": {"aws:TagKeys": "a"}})),
    policy({"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Principal": "*"}),
    policy(allow("s3:*", "arn:aws:s3:::${aws:username}/*")),
    policy({"Effect": "Allow", "Action": "s3:*", "NotAction": "iam:*", "Resource": "*"}),
    policy({"Effect": "Maybe", "Action": "s3:*", "Resource": "*"}),
    {"Version": "2008-10-17", "Statement": [allow("s3:*")]},
])
def test_what_it_does_not_implement_is_refused_not_guessed(bad: dict[str, Any]) -> None:
    # refused even for a request the statement would not match
    with pytest.raises(UnsupportedPolicy):
        evaluate([bad], Request("ec2:StartInstances", "arn:aws:ec2:r:1:instance/i-a"))
