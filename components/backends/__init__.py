"""Backends: where nodes run, one package each (adapter.py, components.py and their extras).

This registry is the one place that names them: config `backend` -> the adapter class, imported
on first use so that importing the registry (or another backend) loads no cloud SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from components.backends.base import Backend, BackendType, HostInputs
    from components.config.farm import AnyFarmConfig
    from components.resources import ChildNamer

#: backend name -> "module:AdapterClass"
ADAPTERS = {
    "aws": "components.backends.aws.adapter:AwsBackend",
    "kubernetes": "components.backends.kubernetes.adapter:KubernetesBackend",
    "ssh": "components.backends.ssh.adapter:SshBackend",
}


def backend_type(name: str) -> BackendType:
    module, _, cls = ADAPTERS[name].partition(":")
    return cast("BackendType", getattr(importlib.import_module(module), cls))


def read_inputs(cfg: AnyFarmConfig, stack: str) -> HostInputs:
    """What the config points at outside the stack (files, keys): read before anything is created."""
    return backend_type(cfg.backend).read_inputs(cfg, stack)


def make_backend(cfg: AnyFarmConfig, inputs: HostInputs, child: ChildNamer) -> Backend[Any]:
    return backend_type(cfg.backend)(cfg, inputs, child)
