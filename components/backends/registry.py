"""The registry of backends: the one place that names them (a leaf module: it imports nothing of the farm).

Each backend is a package under components/backends/<name>/ (config.py, adapter.py, components.py
and its extras); one Entry here makes it known to parse_config, the config reference, read_inputs
and BuildkitFarm (docs/adding-a-backend.md).
"""

from __future__ import annotations

from dataclasses import dataclass


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
