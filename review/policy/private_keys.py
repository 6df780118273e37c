"""Mandatory: private keys only in secrets, in inputs and in outputs (stack outputs included).

(Not named secrets.py: `python -m pulumi.policy` puts this directory first on sys.path, where a
secrets.py would shadow the standard library's.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from review.policy.resources import (
    K8S_CONFIG_MAP,
    SSM_PARAMETER,
    STACK,
    TLS_PRIVATE_KEY,
    Resource,
    Secret,
    Settings,
    Violation,
    get,
    reveal,
)

#: The private-key outputs of tls PrivateKey (all must be secret).
KEY_OUTPUTS = ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh")
PRIVATE_KEY_RE = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")


def plaintext_private_keys(value: Any, path: str = "") -> list[str]:
    """Paths of strings holding a PEM private key that are not inside a secret."""
    if isinstance(value, Secret):
        return []
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in plaintext_private_keys(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in plaintext_private_keys(v, f"{path}[{i}]")]
    if isinstance(value, str) and PRIVATE_KEY_RE.search(value):
        return [path or "."]
    return []


def _holds_key(value: Any) -> bool:
    return any(isinstance(v, str) and PRIVATE_KEY_RE.search(v) for v in _strings(reveal(value)))


def _strings(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    else:
        yield value


def private_keys_only_in_secret_inputs(r: Resource, s: Settings) -> list[str]:
    problems = [f"{r.type.rsplit(':', 1)[-1]} {r.name}: a private key in plain text at {p}; "
                "make it secret (pulumi.Output.secret)" for p in plaintext_private_keys(r.props)]
    if r.type == TLS_PRIVATE_KEY:
        missing = [k for k in KEY_OUTPUTS if k not in r.additional_secret_outputs]
        if missing:
            problems.append(f"PrivateKey {r.name}: outputs {', '.join(missing)} are not declared secret "
                            "(additional_secret_outputs)")
    elif r.type == K8S_CONFIG_MAP and _holds_key(r.props.get("data")):
        problems.append(f"ConfigMap {r.name} holds a private key: keys belong in a Secret")
    elif r.type == SSM_PARAMETER and _holds_key(r.props.get("value")) \
            and get(r.props, "type") != "SecureString":
        problems.append(f"SSM parameter {r.name} holds a private key but is of type {get(r.props, 'type')!r}, "
                        "not SecureString")
    return problems


def private_keys_only_in_secret_outputs(resources: Sequence[Resource], s: Settings) -> list[Violation]:
    """Stack check: no output of any resource (stack outputs included) holds a plain-text key."""
    out: list[Violation] = []
    for r in resources:
        where = "stack output" if r.type == STACK else f"{r.type.rsplit(':', 1)[-1]} {r.name} output"
        for p in plaintext_private_keys(r.props):
            out.append((f"{where} {p.lstrip('.')} holds a private key in plain text; export it with "
                        "pulumi.Output.secret", r.urn or None))
    return out
