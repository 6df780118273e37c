"""Bad input, generated (hypothesis): any value in any key gives a config or the config error, never a crash.

Two strategies: raw stack configs made of arbitrary JSON values under the real keys (and a stray
one), and a valid SSH stack with one value somewhere replaced by an arbitrary one. A config that
parses must render a buildkitd.toml that TOML parses and that keeps mutual TLS on.
"""

from __future__ import annotations

import copy
import tomllib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.config import TOP_LEVEL_KEYS, ConfigError, parse_config
from components.node.render import buildkitd_toml as node_toml

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=24),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=16), inner, max_size=4),
    max_leaves=16)

VALID: dict[str, Any] = {
    "backend": "ssh",
    "nodes": [{"name": "amd64-1", "platform": "linux/amd64", "host": "10.0.0.1", "dataDevice": "/dev/vdb"},
              {"name": "arm64-1", "platform": "linux/arm64", "host": "build.example.com", "sshPort": 2222}],
    "volume": {"sizeGb": 40},
    "buildkit": {"port": 1234, "historyMaxEntries": 50},
    "pki": {"validityHours": 720, "earlyRenewalHours": 72, "clients": ["ci", "dev"]},
    "builder": {"name": "bkf-prop"},
    "ssh": {"privateKeyPath": "/k"},
}


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        out += [p for k, v in value.items() for p in _paths(v, (*path, k))]
    elif isinstance(value, list):
        out += [p for i, v in enumerate(value) for p in _paths(v, (*path, i))]
    return out


PATHS = [p for p in _paths(VALID) if p]


@st.composite
def one_value_replaced(draw: st.DrawFn) -> dict[str, Any]:
    raw = copy.deepcopy(VALID)
    path = draw(st.sampled_from(PATHS))
    target: Any = raw
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = draw(JSON)
    return raw


def check(raw: dict[str, Any], region: str | None = None) -> None:
    try:
        cfg = parse_config(raw, aws_region=region)
    except ConfigError as e:
        assert e.problems, "an error without problems"
        for p in e.problems:
            assert isinstance(p, str) and ": " in p, p  # "<key path>: <what is wrong>"
            assert "Input should" not in p and "Value error" not in p, p  # our words, never pydantic's
        return
    for node in cfg.nodes:
        toml = tomllib.loads(node_toml(cfg, node))
        tls = toml["grpc"]["tls"]
        assert tls["cert"] and tls["key"] and tls["ca"], tls  # a CA: client certs are mandatory
        assert toml["insecure-entitlements"] == []
        assert all(a.startswith(("tcp://", "unix://")) for a in toml["grpc"]["address"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([*TOP_LEVEL_KEYS, "bogus"]), JSON, max_size=6),
       st.none() | st.text(max_size=16))
def test_any_value_in_any_key_is_a_config_or_the_config_error(raw: dict[str, Any], region: str | None) -> None:
    check(raw, region)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(one_value_replaced())
def test_a_valid_stack_with_one_value_replaced_is_a_config_or_the_config_error(raw: dict[str, Any]) -> None:
    check(raw)


def test_the_valid_base_parses() -> None:
    parse_config(VALID)  # the mutations above start from a real config
