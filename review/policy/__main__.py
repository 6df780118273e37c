"""buildkit-farm policy pack: registers checks.POLICIES with pulumi-policy.

Run by the CLI through the launcher beside this file (`pulumi preview --policy-pack
review/policy/run`), or as a directory with an upstream Python language host
(`--policy-pack review/policy`). The checks themselves are pure functions in the
package review.policy, catalogued by checks.py (unit-tested without the engine).

Three small adapters to pulumi-policy 1.21.0 (pinned in requirements.txt; each is
checked below, so a pulumi-policy that changes them stops the pack instead of
silently weakening it):

* properties reach the checks in the engine's wire form. pulumi-policy would
  unwrap secrets (a secret and a plain value look the same to a policy) and
  raise on unknowns at first touch; "private keys only in secrets" needs to see
  which values are secret, so checks.decode does the decoding instead;
* the stack config the engine sends in ConfigureStack (pulumi-policy reads only
  the stack tags from it) gives the build port and the allowOpenIngress opt-in;
* a check that needs an unknown value raises pulumi-policy's own UnknownValueError,
  which the SDK reports as "can't run policy ... during preview".
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# `python -m pulumi.policy` runs this directory as a script (it is first on sys.path, not a
# package): the checks are imported as the package review.policy, from the repository root, the
# same modules the unit tests import. Appended, so that nothing there shadows an installed package.
sys.path.append(str(Path(__file__).resolve().parents[2]))

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import policy as _sdk
from pulumi_policy import proxy as _proxy
from pulumi_policy.version import VERSION as _version

from review.policy import checks

_PINNED = "1.21.0"
if _version != _PINNED:  # pragma: no cover - guards the adapters below
    raise SystemExit(f"buildkit-farm policy pack: written for pulumi-policy {_PINNED}, found {_version}")
for _attr in ("deserialize_properties", "unknown_checking_proxy", "_PolicyAnalyzerServicer"):
    if not hasattr(_sdk, _attr):  # pragma: no cover
        raise SystemExit(f"buildkit-farm policy pack: pulumi_policy.policy.{_attr} is gone; adapt __main__.py")

_deserialize = _sdk.deserialize_properties


def _wire_props(props: dict[str, Any], proxy_secrets: bool = False) -> Any:
    # remediations (proxy_secrets=True) keep the SDK's behaviour; this pack has none
    return _deserialize(props, proxy_secrets) if proxy_secrets else props


_sdk.deserialize_properties = _wire_props
_sdk.unknown_checking_proxy = lambda props: props

_STACK_CONFIG: dict[str, str] = {}
_configure_stack = _sdk._PolicyAnalyzerServicer.ConfigureStack


def _capture_config(self: Any, request: Any, context: Any) -> Any:
    _STACK_CONFIG.clear()
    _STACK_CONFIG.update(dict(request.config))
    return _configure_stack(self, request, context)


_sdk._PolicyAnalyzerServicer.ConfigureStack = _capture_config


def _settings() -> checks.Settings:
    return checks.Settings.from_stack_config(_STACK_CONFIG)


def _unknown(e: checks.UnknownValue) -> Exception:
    return _proxy.UnknownValueError(_proxy.UNKNOWN_STRING_VALUE, e.path.split("."))


def _level(spec: checks.PolicySpec) -> EnforcementLevel:
    return EnforcementLevel.MANDATORY if spec.mandatory else EnforcementLevel.ADVISORY


def _resource_policy(spec: checks.PolicySpec) -> ResourceValidationPolicy:
    check = spec.resource_check
    assert check is not None

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        r = checks.Resource.from_wire(
            args.resource_type, args.name, args.props, urn=args.urn, protect=bool(args.opts.protect),
            additional_secret_outputs=list(args.opts.additional_secret_outputs or []),
            parent_urn=args.opts.parent)
        try:
            messages = check(r, _settings())
        except checks.UnknownValue as e:
            raise _unknown(e) from None
        for m in messages:
            report_violation(m, None)

    return ResourceValidationPolicy(name=spec.name, description=spec.description, validate=validate,
                                    enforcement_level=_level(spec))


def _stack_policy(spec: checks.PolicySpec) -> StackValidationPolicy:
    check = spec.stack_check
    assert check is not None

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [checks.Resource.from_wire(
            r.resource_type, r.name, r.props, urn=r.urn, protect=bool(r.opts.protect),
            additional_secret_outputs=list(r.opts.additional_secret_outputs or []),
            parent_urn=r.parent.urn if r.parent is not None else r.opts.parent) for r in args.resources]
        try:
            violations = check(resources, _settings())
        except checks.UnknownValue as e:
            raise _unknown(e) from None
        for message, urn in violations:
            report_violation(message, urn)

    return StackValidationPolicy(name=spec.name, description=spec.description, validate=validate,
                                 enforcement_level=_level(spec))


PolicyPack(
    name="buildkit-farm",
    enforcement_level=EnforcementLevel.ADVISORY,
    policies=[_resource_policy(p) if p.resource_check else _stack_policy(p) for p in checks.POLICIES],
)
