"""Backends: where nodes run. Each module holds its adapter and its components."""

from __future__ import annotations

from components.backends.aws import AwsBackend
from components.backends.base import Backend, HostInputs
from components.backends.kubernetes.nodes import KubernetesBackend
from components.backends.ssh import SshBackend
from components.config.farm import AnyFarmConfig, AwsFarmConfig, KubernetesFarmConfig, SshFarmConfig
from components.resources import ChildNamer

__all__ = ["AwsBackend", "Backend", "HostInputs", "KubernetesBackend", "SshBackend", "make_backend"]


def make_backend(cfg: AnyFarmConfig, inputs: HostInputs, child: ChildNamer) -> Backend:
    match cfg:
        case AwsFarmConfig():
            return AwsBackend(cfg, inputs, child)
        case SshFarmConfig():
            return SshBackend(cfg, inputs, child)
        case KubernetesFarmConfig():
            return KubernetesBackend(cfg, inputs, child)
