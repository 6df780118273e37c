"""The Kubernetes backend: the namespace and a Service per node first, then the pods."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi

from components.backends.base import AddressComponents, Extras, HostInputs
from components.backends.kubernetes.components import (
    KubernetesCiWake,
    KubernetesCiWakeArgs,
    KubernetesFarmNamespace,
    KubernetesFarmNamespaceArgs,
    KubernetesNode,
    KubernetesNodeAddress,
    KubernetesNodeAddressArgs,
    KubernetesNodeArgs,
)
from components.backends.kubernetes.config import KubernetesFarmConfig
from components.backends.kubernetes.manifests import statefulset_name
from components.backends.kubernetes.metrics import MetricsSidecar
from components.builder.wake import KubernetesWake
from components.node.layout import ROOTLESS_LAYOUT
from components.node.payload import shipped_metrics_proxy
from components.node.render import idle_stop, render
from components.pki import Pki
from components.resources import ChildNamer


@dataclass(frozen=True)
class KubernetesAddresses(AddressComponents[KubernetesNodeAddress]):
    #: the farm's namespace, which every Service is in
    namespace: KubernetesFarmNamespace = field(kw_only=True)


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
            self.spec, self.cfg.buildkit.port, self.cfg.allowed_cidrs, self.cfg.volume.protect,
            self.cfg.metrics.port), opts)
        by_node = {}
        for i, n in enumerate(self.cfg.nodes):
            name, opts = self.child(f"{n.name}-address")
            by_node[n.name] = KubernetesNodeAddress(name, KubernetesNodeAddressArgs(
                node=n, index=i, spec=self.spec, buildkit_port=self.cfg.buildkit.port,
                allowed_cidrs=self.cfg.allowed_cidrs, namespace=namespace, metrics_port=self.cfg.metrics.port), opts)
        return KubernetesAddresses(by_node, namespace=namespace)

    def nodes(self, addresses: KubernetesAddresses, pki: Pki) -> list[KubernetesNode]:
        out = []
        # the config requires kubernetes.metricsImage with metrics.port
        sidecar = MetricsSidecar(self.cfg.metrics.port, self.spec.metrics_image) if self.cfg.metrics.enabled else None
        proxy = shipped_metrics_proxy() if sidecar else None
        for n in self.cfg.nodes:
            name, opts = self.child(n.name)
            out.append(KubernetesNode(name, KubernetesNodeArgs(
                node=n, spec=self.spec, image=self.cfg.buildkit.image, buildkit_port=self.cfg.buildkit.port,
                volume_gb=self.cfg.volume.size_gb, bundle=render(self.cfg, n, ROOTLESS_LAYOUT),
                server_cert=pki.servers[n.name], ca_cert_pem=pki.ca_cert_pem,
                address=addresses.by_node[n.name], drain_timeout_s=self.cfg.buildkit.drain_timeout_seconds,
                metrics=sidecar, metrics_proxy=proxy,
                idle=idle_stop(self.cfg), idle_image=self.spec.idle_image), opts))
        return out

    def extras(self, nodes: Sequence[pulumi.Resource]) -> Extras:
        if not self.cfg.idle_stop.enabled:
            return Extras()
        # idleStop: the create script scales scaled-down nodes back to 1; CI gets a token for exactly that
        name, opts = self.child("ci-wake")
        ci = KubernetesCiWake(name, KubernetesCiWakeArgs(self.spec, self.cfg.nodes, nodes), opts)
        wake = KubernetesWake(self.spec.namespace, {n.name: statefulset_name(n) for n in self.cfg.nodes})
        return Extras(wake=pulumi.Output.from_input(wake), ci_wake_token=ci.token, ci_wake_ca_cert=ci.ca_cert)
