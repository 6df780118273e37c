"""From the stack's config to typed models, with every problem before any resource exists."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from components.config.errors import ConfigError, format_errors
from components.config.farm import BACKENDS, MODELS, AnyFarmConfig, FarmConfig

_ADAPTER: TypeAdapter[AnyFarmConfig] = TypeAdapter(FarmConfig)

#: every `buildkit-farm:*` key any backend accepts
TOP_LEVEL_KEYS: tuple[str, ...] = tuple(dict.fromkeys(
    [*(k for m in MODELS.values() for k in m.keys() if k not in m.provider_keys and k not in BACKENDS), *BACKENDS]))


def parse_config(raw: Mapping[str, Any], *, provider_config: Mapping[str, Any] | None = None,
                 aws_region: str | None = None) -> AnyFarmConfig:
    """Validate the raw ``buildkit-farm:*`` config; raise ConfigError with every problem.

    ``provider_config`` holds provider keys such as ``aws:region``; the backend's model takes those
    it declares in ``provider_keys``. ``aws_region=`` is the older spelling of ``{"aws:region": ...}``.
    """
    backend = raw.get("backend", "aws")
    # An empty section of another backend is no key at all (Pulumi.yaml declares each section).
    data = {k: v for k, v in raw.items() if not (k in BACKENDS and k != backend and v == {})}
    provider = {**({"aws:region": aws_region} if aws_region is not None else {}), **(provider_config or {})}
    model = MODELS.get(backend) if isinstance(backend, str) else None
    data |= {k: v for k, v in provider.items() if model is not None and k in model.provider_keys}
    try:
        # camelCase keys only: field names are for Python callers
        return _ADAPTER.validate_python(data, by_alias=True, by_name=False)
    except ValidationError as e:
        raise ConfigError(format_errors(e, MODELS)) from None


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
