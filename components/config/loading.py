"""From the stack's config to typed models, with every problem before any resource exists."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from components.config.errors import ConfigError, format_errors
from components.config.farm import BACKENDS, AnyFarmConfig, AwsFarmConfig, FarmConfig

_ADAPTER: TypeAdapter[AnyFarmConfig] = TypeAdapter(FarmConfig)

#: every `buildkit-farm:*` key any backend accepts
TOP_LEVEL_KEYS: tuple[str, ...] = tuple(dict.fromkeys(
    [*(k for k in AwsFarmConfig.keys() if k not in AwsFarmConfig.internal_keys), *BACKENDS]))


def parse_config(raw: Mapping[str, Any], *, aws_region: str | None = None) -> AnyFarmConfig:
    """Validate the raw ``buildkit-farm:*`` config; raise ConfigError with every problem."""
    backend = raw.get("backend", "aws")
    # An empty section of another backend is no key at all (Pulumi.yaml declares each section).
    data = {k: v for k, v in raw.items() if not (k in BACKENDS and k != backend and v == {})}
    if backend == "aws" and aws_region is not None:
        data["aws:region"] = aws_region
    try:
        return _ADAPTER.validate_python(data, context={"config": True})
    except ValidationError as e:
        raise ConfigError(format_errors(e)) from None


def read_raw_config(get: Any) -> dict[str, Any]:
    """Every `buildkit-farm:*` key as plain values, objects and lists decoded.

    ``get`` is ``pulumi.Config().get`` (a parameter so this stays testable without Pulumi).
    """
    raw: dict[str, Any] = {}
    for key in TOP_LEVEL_KEYS:
        value = get(key)
        if value is None:
            continue
        try:
            raw[key] = json.loads(value)
        except ValueError:
            raw[key] = value
    return raw
