"""The Kubernetes backend: the namespace and a Service per node first, then the pods."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.backends.base import Extras, HostInputs
from components.backends.kubernetes.components import (
    KubernetesFarmNamespace,
    KubernetesFarmNamespaceArgs,
    KubernetesNode,
    KubernetesNodeAddress,
    KubernetesNodeAddressArgs,
    KubernetesNodeArgs,
)
from components.config.farm import KubernetesFarmConfig
from components.node.address import NodeAddress
from components.node.layout import ROOTLESS_LAYOUT
from components.node.render import render
from components.pki import Pki
from components.resources import ChildNamer


@dataclass(frozen=True)
class KubernetesAddresses:
    namespace: KubernetesFarmNamespace
    by_node: dict[str, KubernetesNodeAddress]

    @property
    def nodes(self) -> list[NodeAddress]:
        return [a.address for a in self.by_node.values()]


class KubernetesBackend:
    """Rootless StatefulSets: the namespace and a Service per node first, then the pods."""

    def __init__(self, cfg: KubernetesFarmConfig, inputs: HostInputs, child: ChildNamer) -> None:
        self.cfg, self.spec, self.inputs, self.child = cfg, cfg.kubernetes, inputs, child

    @staticmethod
    def read_inputs(cfg: KubernetesFarmConfig, stack: str) -> HostInputs:
        # the kubeconfig is the provider's: nothing to read here
        return HostInputs(stack=stack)

    def addresses(self) -> KubernetesAddresses:
        name, opts = self.child("farm")
        namespace = KubernetesFarmNamespace(name, KubernetesFarmNamespaceArgs(
            self.spec, self.cfg.buildkit.port, self.cfg.allowed_cidrs, self.cfg.volume.protect), opts)
        by_node = {}
        for i, n in enumerate(self.cfg.nodes):
            name, opts = self.child(f"{n.name}-address")
            by_node[n.name] = KubernetesNodeAddress(name, KubernetesNodeAddressArgs(
                node=n, index=i, spec=self.spec, buildkit_port=self.cfg.buildkit.port,
                allowed_cidrs=self.cfg.allowed_cidrs, namespace=namespace), opts)
        return KubernetesAddresses(namespace, by_node)

    def nodes(self, addresses: KubernetesAddresses, pki: Pki) -> list[KubernetesNode]:
        out = []
        for n in self.cfg.nodes:
            name, opts = self.child(n.name)
            out.append(KubernetesNode(name, KubernetesNodeArgs(
                node=n, spec=self.spec, image=self.cfg.buildkit.image, buildkit_port=self.cfg.buildkit.port,
                volume_gb=self.cfg.volume.size_gb, bundle=render(self.cfg, n, ROOTLESS_LAYOUT),
                server_cert=pki.servers[n.name], ca_cert_pem=pki.ca_cert_pem,
                address=addresses.by_node[n.name]), opts))
        return out

    def extras(self, nodes: Sequence[pulumi.Resource]) -> Extras:
        return Extras()
