"""Backends: where nodes run, one package each (config.py, adapter.py, components.py and its extras).

This registry is the one place that names them: config `backend` -> the backend's config model and
its adapter, each imported on first use so that importing the registry (or the config) loads no
cloud SDK. Adding a backend is one package and one line here (docs/adding-a-backend.md).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from components.backends.base import Backend, BackendType, HostInputs
    from components.config.farm import AnyFarmConfig, FarmBase
    from components.resources import ChildNamer


@dataclass(frozen=True)
class Entry:
    #: "module:Class" of the backend's config model (a FarmBase with its `nodes` and its section)
    config: str
    #: "module:Class" of its adapter (components/backends/base.py: the protocol)
    adapter: str


#: backend name -> where its config model and adapter live (the order the config reference lists them)
BACKENDS: dict[str, Entry] = {
    "aws": Entry("components.backends.aws.config:AwsFarmConfig", "components.backends.aws.adapter:AwsBackend"),
    "ssh": Entry("components.backends.ssh.config:SshFarmConfig", "components.backends.ssh.adapter:SshBackend"),
    "kubernetes": Entry("components.backends.kubernetes.config:KubernetesFarmConfig",
                        "components.backends.kubernetes.adapter:KubernetesBackend"),
}
#: the backend of a stack that sets none
DEFAULT_BACKEND = "aws"
#: backend name -> "module:AdapterClass"
ADAPTERS = {name: e.adapter for name, e in BACKENDS.items()}


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
