"""buildkit-farm: a remote BuildKit build farm as Pulumi components.

Layers (docs/architecture.md): ``config`` (validated models) -> ``platforms`` ->
``node`` (address, buildkitd.toml, settings, payload, bkf-node.sh) -> ``pki`` ->
``backends`` (aws, ssh, kubernetes) -> ``builder`` -> ``farm`` -> ``outputs``.

What a program that embeds a farm needs is importable from here. The names load on first use:
importing a light module (``components.status``, the stdlib-only contracts the policy pack reads)
must not load Pulumi or a cloud SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from components.backends.base import HostInputs
    from components.config import ConfigError, parse_config
    from components.farm import BuildkitFarm, FarmArgs

#: public name -> the module that defines it
_PUBLIC = {
    "BuildkitFarm": "components.farm",
    "ConfigError": "components.config",
    "FarmArgs": "components.farm",
    "HostInputs": "components.backends.base",
    "parse_config": "components.config",
}

__all__ = ["BuildkitFarm", "ConfigError", "FarmArgs", "HostInputs", "parse_config"]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'components' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
