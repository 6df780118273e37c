"""A small IAM identity-policy evaluator (pure, stdlib only): what a principal's policies allow.

It answers one question for one account: given every identity policy attached to a principal
(inline and managed alike), is a request allowed, explicitly denied or implicitly denied? That is
AWS's documented order for identity-based policies: an explicit Deny in any policy wins, then an
Allow in any policy, else the request is implicitly denied
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).

Deliberately out of scope (so a result is never wider than the policies it was given): resource
policies (a KMS key policy, a bucket policy), permission boundaries, SCPs and session policies.
What it does not understand it refuses with ``UnsupportedPolicy`` instead of guessing: an unknown
element, a condition operator outside ``OPERATORS``, set operators (ForAllValues/ForAnyValue),
policy variables (``${...}``) and any policy language version but 2012-10-17.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any


class UnsupportedPolicy(ValueError):
    """The policy uses something this evaluator does not implement."""


class Decision(enum.Enum):
    ALLOW = "allowed"
    EXPLICIT_DENY = "denied (explicit)"
    IMPLICIT_DENY = "denied (implicit)"

    @property
    def allowed(self) -> bool:
        return self is Decision.ALLOW


@dataclass(frozen=True)
class Request:
    """One API call: its action, the resource's ARN and the request context keys it carries."""

    action: str
    resource: str
    context: Mapping[str, str] = field(default_factory=dict)


@lru_cache(maxsize=1024)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    # IAM's only wildcards: `*` (any run, possibly empty) and `?` (one character); all else literal.
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def glob_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    return _glob(pattern, ignore_case).fullmatch(value) is not None


def action_matches(pattern: str, action: str) -> bool:
    """Actions are case-insensitive (`SSM:getparameter` is `ssm:GetParameter`)."""
    return glob_match(pattern, action, ignore_case=True)


def arn_matches(pattern: str, arn: str) -> bool:
    """ARN matching as Resource and ArnLike do it: case-sensitive, and each of the six
    colon-separated parts matched on its own, so a `*` in the account part never swallows a colon.
    The sixth part (the resource) may itself contain colons."""
    if pattern == "*":
        return True
    want, got = pattern.split(":", 5), arn.split(":", 5)
    if len(want) != 6 or len(got) != 6:
        return glob_match(pattern, arn)  # not an ARN: a plain case-sensitive glob
    return all(glob_match(w, g) for w, g in zip(want, got, strict=True))


def _as_list(value: Any, what: str) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise UnsupportedPolicy(f"{what} must be a string or a list of strings, not {value!r}")
    if any("${" in v for v in values):
        raise UnsupportedPolicy(f"policy variables are not supported: {what} {values!r}")
    return values


def _string_equals(want: str, got: str) -> bool:
    return want == got


def _string_equals_ignore_case(want: str, got: str) -> bool:
    return want.lower() == got.lower()


def _string_like(want: str, got: str) -> bool:
    return glob_match(want, got)


def _bool(want: str, got: str) -> bool:
    return want.lower() == got.lower()


#: operator -> (how one policy value matches the request's value, negated)
#: ArnEquals and ArnLike behave the same in IAM (both take wildcards per ARN part).
OPERATORS: dict[str, tuple[Callable[[str, str], bool], bool]] = {
    "StringEquals": (_string_equals, False),
    "StringNotEquals": (_string_equals, True),
    "StringEqualsIgnoreCase": (_string_equals_ignore_case, False),
    "StringNotEqualsIgnoreCase": (_string_equals_ignore_case, True),
    "StringLike": (_string_like, False),
    "StringNotLike": (_string_like, True),
    "ArnEquals": (arn_matches, False),
    "ArnLike": (arn_matches, False),
    "ArnNotEquals": (arn_matches, True),
    "ArnNotLike": (arn_matches, True),
    "Bool": (_bool, False),
}


def _context_value(context: Mapping[str, str], key: str) -> str | None:
    # Condition key names are case-insensitive.
    lowered = key.lower()
    return next((v for k, v in context.items() if k.lower() == lowered), None)


def _condition_holds(operator: str, key: str, wanted: list[str], context: Mapping[str, str]) -> bool:
    got = _context_value(context, key)
    if operator == "Null":
        # "true": the key must be absent; "false": present.
        return all((w.lower() == "true") == (got is None) for w in wanted)
    base, if_exists = (operator[:-8], True) if operator.endswith("IfExists") else (operator, False)
    if base not in OPERATORS:
        raise UnsupportedPolicy(f"condition operator {operator!r} is not supported")
    match, negated = OPERATORS[base]
    if got is None:
        # A missing key matches nothing: positive operators fail, negated ones hold, ...IfExists holds.
        return if_exists or negated
    if negated:
        return not any(match(w, got) for w in wanted)
    return any(match(w, got) for w in wanted)


def conditions_hold(condition: Any, context: Mapping[str, str]) -> bool:
    """Every operator, and every key under it, must hold (AND); a key's values are ORed
    (for negated operators: none may match)."""
    if not isinstance(condition, dict):
        raise UnsupportedPolicy(f"Condition must be an object, not {condition!r}")
    for operator, keys in condition.items():
        if ":" in operator:
            raise UnsupportedPolicy(f"set operators are not supported: {operator!r}")
        if not isinstance(keys, dict):
            raise UnsupportedPolicy(f"{operator} must map keys to values, not {keys!r}")
        for key, values in keys.items():
            if not _condition_holds(operator, key, _as_list(values, f"{operator} {key}"), context):
                return False
    return True


_STATEMENT_KEYS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}


def _one_of(statement: Mapping[str, Any], a: str, b: str) -> tuple[list[str], bool]:
    if (a in statement) == (b in statement):
        raise UnsupportedPolicy(f"a statement needs exactly one of {a} and {b}: {statement!r}")
    key = a if a in statement else b
    return _as_list(statement[key], key), key == b


def statement_applies(statement: Mapping[str, Any], request: Request) -> bool:
    unknown = set(statement) - _STATEMENT_KEYS
    if unknown:
        raise UnsupportedPolicy(f"statement elements {sorted(unknown)} are not supported (identity policies only)")
    if statement.get("Effect") not in ("Allow", "Deny"):
        raise UnsupportedPolicy(f"Effect must be Allow or Deny: {statement!r}")
    actions, not_action = _one_of(statement, "Action", "NotAction")
    resources, not_resource = _one_of(statement, "Resource", "NotResource")
    # Conditions are evaluated even when the action does not match, so an unsupported operator
    # is refused whatever the request.
    conditions = conditions_hold(statement.get("Condition", {}), request.context)
    return (any(action_matches(a, request.action) for a in actions) != not_action
            and any(arn_matches(r, request.resource) for r in resources) != not_resource
            and conditions)


def _statements(policy: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    if policy.get("Version") != "2012-10-17":
        raise UnsupportedPolicy(f"policy Version must be 2012-10-17, not {policy.get('Version')!r}")
    statements = policy.get("Statement")
    if isinstance(statements, dict):
        return [statements]
    if not isinstance(statements, list) or not statements:
        raise UnsupportedPolicy("a policy needs a Statement (an object or a non-empty list)")
    return statements


def evaluate(policies: Iterable[Mapping[str, Any]], request: Request) -> Decision:
    """The decision of a principal's identity policies (all of them) on one request."""
    # Every statement is read (no early return on a Deny), so an unsupported one always raises.
    effects = {statement["Effect"] for policy in policies for statement in _statements(policy)
               if statement_applies(statement, request)}
    if "Deny" in effects:
        return Decision.EXPLICIT_DENY
    return Decision.ALLOW if "Allow" in effects else Decision.IMPLICIT_DENY
