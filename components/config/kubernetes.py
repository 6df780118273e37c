"""The Kubernetes backend's config: its section (`kubernetes:`) and its nodes."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from components.config.base import ConfigModel, Problem, problems, raw_list, raw_str
from components.config.fields import DNS_NAME, integer, matching, one_of, quantity, quantity_amount, text
from components.config.nodes import Host, NodeSpec

K8sName = Annotated[str, matching(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", "a DNS label (Kubernetes name)")]
_ANNOTATION_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


def _annotation_key(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if not _ANNOTATION_NAME.match(name) or (prefix and not re.match(DNS_NAME, prefix)):
        raise ValueError(key)
    return key


AnnotationKey = Annotated[str, text()]
AnnotationValue = Annotated[str, matching(r"(?s)^.*$", "a string (quote numbers and booleans)")]


class KubernetesNodeSpec(NodeSpec):
    host: Host | None = Field(
        None, description="kubernetes, ssh: the host clients dial (kubernetes: overrides the Service address)")


KubernetesNodeSpec.register("kubernetes")


class KubernetesSpec(ConfigModel):
    """Where the StatefulSets run and how they are reached (see docs/kubernetes.md)."""

    namespace: K8sName = Field("buildkit-farm", description="the farm's own namespace (Pod Security `privileged`)")
    service_type: Annotated[Literal["LoadBalancer", "NodePort", "ClusterIP"],
                            one_of("LoadBalancer", "NodePort", "ClusterIP")] = Field(
        "LoadBalancer", description="how each node's Service is exposed")
    storage_class: K8sName | None = Field(None, description="storage class of the cache PVCs; none: the default")
    node_port_base: Annotated[int, integer(30000, 32767)] = Field(
        31234, description="NodePort: node i (config order) gets nodePortBase+i")
    cpu_request: Annotated[str, quantity()] = Field("1", description="buildkitd container CPU request")
    memory_request: Annotated[str, quantity()] = Field("2Gi", description="buildkitd container memory request")
    cpu_limit: Annotated[str, quantity()] = Field("4", description="buildkitd container CPU limit")
    memory_limit: Annotated[str, quantity()] = Field("8Gi", description="buildkitd container memory limit")
    external_hosts: tuple[Host, ...] = Field(
        (), description="names/IPs the Services are reached at from outside (cert SANs); with NodePort or "
        "ClusterIP the first is the host clients dial")
    service_annotations: dict[AnnotationKey, AnnotationValue] = Field(
        default_factory=dict, description="annotations on every Service (e.g. an internal load balancer)")
    drain_timeout_seconds: Annotated[int, integer(0, 3600)] = Field(
        600, description="how long a stopping pod waits for running builds before buildkitd gets SIGTERM")

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Self:
        found: list[Problem] = []
        for key in self.service_annotations:
            try:
                _annotation_key(key)
            except ValueError:
                found.append((("serviceAnnotations", key),
                              f"{key!r} is not an annotation key ([prefix/]name, e.g. service.beta.kubernetes.io/foo)"))
        # Kubernetes rejects requests above limits only at apply time.
        for what, req, lim in (("cpu", self.cpu_request, self.cpu_limit),
                               ("memory", self.memory_request, self.memory_limit)):
            if quantity_amount(req) > quantity_amount(lim):
                found.append(((f"{what}Request",), f"{req!r} is more than kubernetes.{what}Limit ({lim!r}); "
                               "allowed: a request at most the limit"))
        if found:
            raise problems(found)
        return self


def cross_node_problems(data: Mapping[str, Any]) -> Iterable[Problem]:
    """Rules between the kubernetes section and the nodes (over raw config, tolerant)."""
    section = data.get("kubernetes") if isinstance(data.get("kubernetes"), Mapping) else {}
    assert isinstance(section, Mapping)
    nodes = raw_list(data, "nodes")
    hosts = section.get("externalHosts")
    if section.get("serviceType") == "ClusterIP" and isinstance(hosts, list) and hosts:
        # every node listens on the same port: one shared host would give every node the same
        # endpoint, which buildx rejects
        shared = [i for i, n in enumerate(nodes) if isinstance(n, Mapping) and not raw_str(n, "host")]
        if len(shared) > 1:
            yield (("kubernetes", "externalHosts"),
                   f"{hosts!r} would make nodes {', '.join(f'nodes[{i}]' for i in shared)} share the endpoint "
                   f"{hosts[0]}:<port> (serviceType ClusterIP); give each node its own nodes[].host, or use "
                   "serviceType LoadBalancer or NodePort")
    base = section.get("nodePortBase", 31234)
    if isinstance(base, int) and not isinstance(base, bool) and base + max(len(nodes), 1) - 1 > 32767:
        yield (("kubernetes", "nodePortBase"),
               f"{base!r} leaves no room for {len(nodes)} nodes (node i gets nodePortBase+i; "
               f"allowed: 30000 to {32767 - len(nodes) + 1})")
