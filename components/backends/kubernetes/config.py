"""The Kubernetes backend's config: its section (`kubernetes:`) and its nodes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, ValidationInfo, model_validator

from components.config.base import ConfigModel, Problem, problems
from components.config.farm import BACKEND_DOC, FarmBase, Nodes, RequiredCidrs, fits_nodes
from components.config.fields import DNS_NAME, Host, Int, Quantity, allows, integer, matching, quantity_amount
from components.config.nodes import NodeSpec

K8sName = Annotated[str, matching(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", "a DNS label (Kubernetes name)")]


def _annotation_key(key: str) -> str:
    prefix, _, name = key.rpartition("/")
    if not re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$", name) or (prefix and not re.match(DNS_NAME,
                                                                                                        prefix)):
        raise ValueError(key)
    return key


AnnotationKey = Annotated[str, AfterValidator(_annotation_key), allows(
    "an annotation key ([prefix/]name, e.g. service.beta.kubernetes.io/foo)")]
AnnotationValue = Annotated[str, allows("a string (quote numbers and booleans)")]
#: a real public choice, documented (docs/kubernetes.md): python:3.11-slim pinned by its digest
METRICS_IMAGE_EXAMPLE = "python:3.11-slim@sha256:<digest>"
MetricsImage = Annotated[str, matching(r"^([a-z0-9][a-z0-9._/:-]*:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64})?$",
                                       "an image with python3, pinned by tag and digest (name:tag@sha256:<64 hex>; "
                                       "empty: none)")]


class KubernetesNodeSpec(NodeSpec):
    host: Host | None = Field(
        None, description="kubernetes, ssh: the host clients dial (kubernetes: overrides the Service address)")


class KubernetesSpec(ConfigModel):
    """Where the StatefulSets run and how they are reached (see docs/kubernetes.md)."""

    #: keys this section no longer takes -> the key that took their place
    moved_keys: ClassVar[dict[str, str]] = {"drainTimeoutSeconds": "buildkit.drainTimeoutSeconds"}

    namespace: K8sName = Field("buildkit-farm", description="the farm's own namespace (Pod Security `privileged`)")
    service_type: Literal["LoadBalancer", "NodePort", "ClusterIP"] = Field(
        "LoadBalancer", description="how each node's Service is exposed")
    storage_class: K8sName | None = Field(None, description="storage class of the cache PVCs; none: the default")
    node_port_base: Annotated[Int, integer(30000, 32767)] = Field(
        31234, description="NodePort: node i (config order) gets nodePortBase+i")
    cpu_request: Quantity = Field("1", description="buildkitd container CPU request")
    memory_request: Quantity = Field("2Gi", description="buildkitd container memory request")
    cpu_limit: Quantity = Field("4", description="buildkitd container CPU limit")
    memory_limit: Quantity = Field("8Gi", description="buildkitd container memory limit")
    external_hosts: tuple[Host, ...] = Field(
        (), description="names/IPs the Services are reached at from outside (cert SANs); with NodePort or "
        "ClusterIP the first is the host clients dial")
    service_annotations: dict[AnnotationKey, AnnotationValue] = Field(
        default_factory=dict, description="annotations on every Service (e.g. an internal load balancer)")
    metrics_image: MetricsImage = Field(
        "", description="metrics.port: the image of the metrics sidecar, any image with python3 (e.g. "
        "python:3.11-slim), pinned by tag and digest; required when metrics.port is set")
    idle_image: Annotated[str, matching(r"^([a-z0-9][a-z0-9._/:-]*:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64})?$",
                                        "an image with sh and curl pinned by tag and digest "
                                        "(name:tag@sha256:<64 hex>), or empty")] = Field(
        "", description="idleStop: the image of each pod's scaler container, which scales the node's StatefulSet "
        "to 0 when the node is idle (it needs sh and curl, e.g. curlimages/curl); required with idleStop")
    api_server: Annotated[str, matching(r"^https://[A-Za-z0-9.\[\]:-]+(:\d{1,5})?$", "an https:// URL")] = Field(
        "https://kubernetes.default.svc", description="idleStop: the API server's address as the pods reach it "
        "(its certificate is checked against the cluster's CA)")

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Self:
        # Kubernetes rejects requests above limits only at apply time.
        found: list[Problem] = [
            ((f"{what}Request",), f"{req!r} is more than kubernetes.{what}Limit ({lim!r}); "
             "allowed: a request at most the limit")
            for what, req, lim in (("cpu", self.cpu_request, self.cpu_limit),
                                   ("memory", self.memory_request, self.memory_limit))
            if quantity_amount(req) > quantity_amount(lim)]
        if found:
            raise problems(found)
        return self


def cross_node_problems(spec: KubernetesSpec, nodes: tuple[KubernetesNodeSpec, ...]) -> Iterable[Problem]:
    """Rules between the kubernetes section and the nodes (locations relative to the section)."""
    hosts = spec.external_hosts
    if spec.service_type == "ClusterIP" and hosts:
        # every node listens on the same port: one shared host would give every node the same
        # endpoint, which buildx rejects
        shared = [i for i, n in enumerate(nodes) if not n.host]
        if len(shared) > 1:
            yield (("externalHosts",),
                   f"{list(hosts)!r} would make nodes {', '.join(f'nodes[{i}]' for i in shared)} share the endpoint "
                   f"{hosts[0]}:<port> (serviceType ClusterIP); give each node its own nodes[].host, or use "
                   "serviceType LoadBalancer or NodePort")
    if spec.node_port_base + max(len(nodes), 1) - 1 > 32767:
        yield (("nodePortBase",), f"{spec.node_port_base!r} leaves no room for {len(nodes)} nodes (node i gets "
               f"nodePortBase+i; allowed: 30000 to {32767 - len(nodes) + 1})")


def _metrics_image_when_metrics(spec: KubernetesSpec, info: ValidationInfo) -> KubernetesSpec:
    # the rootless BuildKit image has no python3: the endpoint runs in a sidecar of the user's image
    metrics = info.data.get("metrics")
    if metrics is not None and metrics.enabled and not spec.metrics_image:
        raise problems([(("metricsImage",), f"'': metrics.port ({metrics.port}) runs its endpoint in a sidecar "
                         "container, which needs an image with python3 (allowed: an image pinned by tag and "
                         f"digest, like {METRICS_IMAGE_EXAMPLE})")])
    return spec


class KubernetesFarmConfig(FarmBase):
    backend: Literal["kubernetes"] = Field("kubernetes", description=BACKEND_DOC)
    nodes: Nodes[KubernetesNodeSpec] = ()
    allowed_cidrs: RequiredCidrs = ()
    kubernetes: Annotated[KubernetesSpec, fits_nodes(cross_node_problems),
                          AfterValidator(_metrics_image_when_metrics)] = Field(
        KubernetesSpec(), validate_default=True, description="namespace, Services and resources")

    @model_validator(mode="after")
    def _idle_needs_its_image(self) -> Self:
        # the rootless image has no HTTP client that can PATCH: the scaler container brings curl
        if self.idle_stop.enabled and not self.kubernetes.idle_image:
            raise problems([(("kubernetes", "idleImage"),
                             f"'': idleStop.afterMinutes is {self.idle_stop.after_minutes}: "
                             "the scaler container needs an image with sh and curl (allowed: name:tag@sha256:<64 hex>, "
                             "e.g. curlimages/curl)")])
        return self
