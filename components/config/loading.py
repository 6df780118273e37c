"""From the stack's config to typed models, with every problem before any resource exists."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag, TypeAdapter, ValidationError

from components.backends import DEFAULT_BACKEND, config_models
from components.config.errors import ConfigError, format_errors
from components.config.farm import BACKENDS, AnyFarmConfig, Backend
from components.config.fields import allowed_text


def _backend_of(data: Any) -> str:
    return str(data.get("backend", DEFAULT_BACKEND)) if isinstance(data, Mapping) else DEFAULT_BACKEND


@cache
def _adapter() -> TypeAdapter[AnyFarmConfig]:
    """The stack config: `backend` picks the model (aws if unset), one per registered backend."""
    tagged = tuple(Annotated[model, Tag(name)] for name, model in config_models().items())
    union = Annotated[Union[tagged],  # type: ignore[valid-type]  # noqa: UP007 (built from the registry)
                      Discriminator(_backend_of, custom_error_type="config",
                                    custom_error_message=f"is not {allowed_text(Backend)}")]
    return TypeAdapter(union)


@cache
def top_level_keys() -> tuple[str, ...]:
    """Every `buildkit-farm:*` key any backend accepts."""
    models = config_models().values()
    return tuple(dict.fromkeys(
        [*(k for m in models for k in m.keys() if k not in m.provider_keys and k not in BACKENDS), *BACKENDS]))


def __getattr__(name: str) -> Any:
    # TOP_LEVEL_KEYS reads every backend's model, which import this package: computed on first use
    if name == "TOP_LEVEL_KEYS":
        return top_level_keys()
    raise AttributeError(name)


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
    model = config_models().get(backend) if isinstance(backend, str) else None
    data |= {k: v for k, v in provider.items() if model is not None and k in model.provider_keys}
    try:
        # camelCase keys only: field names are for Python callers
        return _adapter().validate_python(data, by_alias=True, by_name=False)
    except ValidationError as e:
        raise ConfigError(format_errors(e, config_models())) from None


def read_raw_config(get: Any) -> dict[str, Any]:
    """Every `buildkit-farm:*` key as plain values, objects and lists decoded.

    ``get`` is ``pulumi.Config().get`` (a parameter so this stays testable without Pulumi).
    """
    raw: dict[str, Any] = {}
    for key in top_level_keys():
        value = get(key)
        if value is None:
            continue
        try:
            raw[key] = json.loads(value)
        except ValueError:
            raw[key] = value
    return raw
