"""Backends: where nodes run, one package each (config.py, adapter.py, components.py and its extras).

The registry (registry.py) is the one place that names them: config `backend` -> the backend's config
model and its adapter, each imported here on first use so that importing the registry (or the
config) loads no cloud SDK. Adding a backend is one package and one line in registry.py
(docs/adding-a-backend.md).
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from components.backends.registry import ADAPTERS, BACKENDS, DEFAULT_BACKEND, Entry

if TYPE_CHECKING:
    from components.backends.base import Backend, BackendType, HostInputs
    from components.config.farm import AnyFarmConfig, FarmBase
    from components.resources import ChildNamer


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@cache
def config_models() -> dict[str, type[FarmBase]]:
    """Each backend's config model, in registry order (imports the config modules, not the SDKs)."""
    return {name: _load(e.config) for name, e in BACKENDS.items()}


def backend_type(name: str) -> BackendType:
    return cast("BackendType", _load(BACKENDS[name].adapter))


def read_inputs(cfg: AnyFarmConfig, stack: str) -> HostInputs:
    """What the config points at outside the stack (files, keys): read before anything is created."""
    return backend_type(cfg.backend).read_inputs(cfg, stack)


def make_backend(cfg: AnyFarmConfig, inputs: HostInputs, child: ChildNamer) -> Backend[Any]:
    return backend_type(cfg.backend)(cfg, inputs, child)


__all__ = ["ADAPTERS", "BACKENDS", "DEFAULT_BACKEND", "Entry", "backend_type", "config_models", "make_backend",
           "read_inputs"]
