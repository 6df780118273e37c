"""Kubernetes backend: rootless BuildKit StatefulSets with persistent caches.

Three components, created in dependency order by adapter.py (see components/backends/base.py):

* ``KubernetesFarmNamespace`` (from ``addresses``): the dedicated Namespace with
  its Pod Security labels, and the NetworkPolicy of every farm pod, in place
  before any pod exists.
* ``KubernetesNodeAddress`` (from ``addresses``): one Service per node, selecting
  exactly that node's pod. It exists before the server cert that names it.
* ``KubernetesNode`` (from ``nodes``): the node's TLS Secret, its buildkitd.toml
  ConfigMap and a one-replica StatefulSet whose cache lives on a retained PVC.

The manifests themselves are pure functions in manifests.py beside this module.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.backends.kubernetes import idle as i
from components.backends.kubernetes import manifests as m
from components.backends.kubernetes import pod
from components.backends.kubernetes.config import KubernetesNodeSpec, KubernetesSpec
from components.backends.kubernetes.metrics import MetricsSidecar
from components.node.address import NodeAddress
from components.node.idle import IdleStop
from components.node.render import NodeBundle
from components.pki import IssuedCert


def load_balancer_address(status: Any) -> str:
    """The first ingress IP (or hostname) of a LoadBalancer Service's status."""
    lb = getattr(status, "load_balancer", None) if status is not None else None
    for ingress in (getattr(lb, "ingress", None) or []):
        address = getattr(ingress, "ip", None) or getattr(ingress, "hostname", None)
        if address:
            return str(address)
    raise ValueError("the LoadBalancer Service has no ingress address yet; the cluster must provide "
                     "load balancers (or use kubernetes.serviceType NodePort/ClusterIP)")


@dataclass(frozen=True)
class KubernetesFarmNamespaceArgs:
    spec: KubernetesSpec
    port: int
    allowed_cidrs: Sequence[str]
    #: `volume.protect`: deleting the namespace would delete the cache PVCs
    protect: bool
    #: metrics.port (0: off): the NetworkPolicy admits it from allowedCidrs too
    metrics_port: int = 0


class KubernetesFarmNamespace(pulumi.ComponentResource):
    """The farm's own Namespace and the NetworkPolicy every build pod gets."""

    namespace: pulumi.Output[str]
    """The namespace name."""

    def __init__(self, name: str, args: KubernetesFarmNamespaceArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("buildkit-farm:index:KubernetesFarmNamespace", name, None, opts)
        spec, port, allowed_cidrs, protect = args.spec, args.port, args.allowed_cidrs, args.protect
        ns = m.namespace_manifest(spec)
        # The caches are PVCs in this namespace, and deleting a namespace deletes
        # its PVCs: `volume.protect` guards the namespace like the EBS volume on AWS.
        self.namespace_resource = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata=ns["metadata"],
            opts=pulumi.ResourceOptions(parent=self, protect=protect))
        np = m.network_policy_manifest(spec, port, allowed_cidrs, args.metrics_port)
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy", metadata=np["metadata"], spec=np["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace_resource]))
        self.namespace = self.namespace_resource.metadata.apply(lambda md: str(md.name))
        self.register_outputs({"namespace": self.namespace})


@dataclass(frozen=True)
class KubernetesNodeAddressArgs:
    node: KubernetesNodeSpec
    #: the node's position in config order (NodePort: nodePortBase + index)
    index: int
    spec: KubernetesSpec
    buildkit_port: int
    allowed_cidrs: tuple[str, ...]
    namespace: KubernetesFarmNamespace
    #: metrics.port (0: off): a second Service port
    metrics_port: int = 0


class KubernetesNodeAddress(pulumi.ComponentResource):
    """The node's Service: its stable address, made before its cert."""

    service_name: pulumi.Output[str]
    """The Service's name in the farm namespace."""
    host: pulumi.Output[str]
    """The host clients dial (and the TLS server name)."""

    def __init__(self, name: str, args: KubernetesNodeAddressArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("buildkit-farm:index:KubernetesNodeAddress", name, None, opts)
        node, spec = args.node, args.spec
        svc = m.service_manifest(spec, node, args.index, args.buildkit_port, args.allowed_cidrs, args.metrics_port)
        # The provider waits for a LoadBalancer Service to get its ingress address.
        service = k8s.core.v1.Service(
            f"{name}-service", metadata=svc["metadata"], spec=svc["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.namespace.namespace_resource]))
        fixed = m.dial_host(spec, node)
        if spec.service_type == "LoadBalancer":
            lb = service.status.apply(load_balancer_address)
            host = pulumi.Output.from_input(fixed) if fixed else lb
            sans = lb.apply(lambda a: m.server_sans(spec, node, fixed or a, a))
        else:
            assert fixed is not None
            host = pulumi.Output.from_input(fixed)
            sans = pulumi.Output.from_input(m.server_sans(spec, node, fixed))
        self.service_name = service.metadata.apply(lambda md: str(md.name))
        self.host = host
        self.address = NodeAddress(name=node.name, platform=node.platform,
                                   port=m.service_port(spec, args.index, args.buildkit_port),
                                   host=host, sans=sans)
        self.register_outputs({"service_name": self.service_name, "host": self.host})


@dataclass(frozen=True)
class KubernetesNodeArgs:
    node: KubernetesNodeSpec
    spec: KubernetesSpec
    image: str
    buildkit_port: int
    volume_gb: int
    #: what the node runs from (components/node/render.py, rootless layout), shipped as a ConfigMap
    bundle: NodeBundle
    server_cert: IssuedCert
    ca_cert_pem: pulumi.Input[str]
    address: KubernetesNodeAddress
    #: buildkit.drainTimeoutSeconds: how long a stopping pod waits for builds in flight
    drain_timeout_s: int
    #: metrics.port with kubernetes.metricsImage (None: off)
    metrics: MetricsSidecar | None = None
    #: the script the sidecar runs (payload.shipped_metrics_proxy), shipped in the ConfigMap
    metrics_proxy: str | None = None
    #: idleStop (None: off): the pod scales its StatefulSet to 0 when idle (idle.py)
    idle: IdleStop | None = None
    #: kubernetes.idleImage: the scaler container's image (idleStop only)
    idle_image: str = ""


class KubernetesNode(pulumi.ComponentResource):
    """One rootless buildkitd: TLS Secret, config, and a one-replica StatefulSet."""

    statefulset_name: pulumi.Output[str]
    """The StatefulSet (its one pod is `<name>-0`)."""
    cache_claim: pulumi.Output[str]
    """The PVC holding the build cache; it survives the StatefulSet (Retain)."""
    endpoint: pulumi.Output[str]
    """tcp://host:port clients dial."""

    def __init__(self, name: str, args: KubernetesNodeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("buildkit-farm:index:KubernetesNode", name, None, opts)
        node, spec = args.node, args.spec
        ca = pulumi.Output.from_input(args.ca_cert_pem)

        headers = args.bundle.otel_headers
        sec = m.secret_manifest(spec, node, {
            "ca.pem": ca,
            "cert.pem": args.server_cert.cert_pem,
            # secret Output: stays encrypted in state; the SDK marks data/stringData secret too
            "key.pem": pulumi.Output.secret(args.server_cert.private_key_pem),
            # config otel.headers: a secret like the key (the pod reads it through a secretKeyRef)
            **({m.OTEL_HEADERS_KEY: pulumi.Output.secret(headers)} if headers else {}),
        })
        secret = k8s.core.v1.Secret(
            f"{name}-tls", metadata=sec["metadata"], type=sec["type"], string_data=sec["stringData"],
            opts=pulumi.ResourceOptions(parent=self))

        config_files = m.config_files(args.bundle.files)
        proxy = args.metrics_proxy if args.metrics is not None else None
        cm = m.config_map_manifest(spec, node, args.bundle.buildkitd_toml, config_files, proxy)
        config = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=cm["metadata"], data=cm["data"],
            opts=pulumi.ResourceOptions(parent=self))

        sts = pod.statefulset_manifest(
            spec, node, image=args.image, buildkit_port=args.buildkit_port, volume_gb=args.volume_gb,
            drain_timeout_s=args.drain_timeout_s,
            # a new proxy script restarts the pod too (without metrics the checksum is what it was)
            config_sha256=m.sha256(args.bundle.buildkitd_toml + (proxy or "")), config_files=config_files,
            env=args.bundle.daemon_env, sidecar=args.metrics,
            secret_env={"OTEL_EXPORTER_OTLP_HEADERS": m.OTEL_HEADERS_KEY} if headers else None,
            # (the key only with headers: without, the annotation's inputs are what they were). An HMAC
            # reveals neither the key nor the headers: unsecret, or the whole pod spec would turn secret
            # in state and previews
            tls_sha256=pulumi.Output.unsecret(pulumi.Output.all(
                ca, args.server_cert.cert_pem, *([args.server_cert.private_key_pem] if headers else [])).apply(
                lambda v: m.tls_checksum(v[0], v[1], v[2] if headers else "", headers))))
        deps: list[pulumi.Resource] = [secret, config, args.address]
        if args.idle is not None:
            sts = i.with_idle_stop(sts, spec, node, args.idle, args.idle_image)
            # its ServiceAccount (the scaler's token) and what that may do, before the pod
            deps += scale_role(f"{name}-idle", i.node_rbac_manifests(spec, node), self)
        # A rollout includes the old pod's drain; the default await (10 min) may be shorter.
        rollout = f"{(pod.termination_grace_s(args.drain_timeout_s) + 600) // 60 + 1}m"
        statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset", metadata=sts["metadata"], spec=sts["spec"],
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=deps,
                custom_timeouts=pulumi.CustomTimeouts(create=rollout, update=rollout)))

        self.statefulset_name = statefulset.metadata.apply(lambda md: str(md.name))
        self.cache_claim = self.statefulset_name.apply(lambda _: m.pvc_name(node))
        self.endpoint = args.address.address.endpoint
        self.register_outputs({"statefulset_name": self.statefulset_name, "cache_claim": self.cache_claim,
                               "endpoint": self.endpoint})


def scale_role(name: str, objects: list[dict[str, Any]], parent: pulumi.Resource,
               depends_on: Sequence[pulumi.Resource] = ()) -> list[pulumi.Resource]:
    """The ServiceAccount, Role and RoleBinding of idle.scale_role_manifests."""
    sa, role, binding = objects
    opts = pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on))
    account = k8s.core.v1.ServiceAccount(
        f"{name}-account", metadata=sa["metadata"],
        automount_service_account_token=sa["automountServiceAccountToken"], opts=opts)
    r = k8s.rbac.v1.Role(f"{name}-role", metadata=role["metadata"], rules=role["rules"], opts=opts)
    b = k8s.rbac.v1.RoleBinding(
        f"{name}-binding", metadata=binding["metadata"], role_ref=binding["roleRef"], subjects=binding["subjects"],
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[account, r]))
    return [account, r, b]


@dataclass(frozen=True)
class KubernetesCiWakeArgs:
    spec: KubernetesSpec
    nodes: Sequence[KubernetesNodeSpec]
    #: the farm's nodes (their StatefulSets, and the namespace they are in, exist first)
    depends_on: Sequence[pulumi.Resource]


class KubernetesCiWake(pulumi.ComponentResource):
    """idleStop: what CI needs to wake the farm: a ServiceAccount that may only get and patch the scale of
    the farm's StatefulSets, and its token (stack outputs ciWakeToken, ciWakeCaCert)."""

    token: pulumi.Output[str]
    """The ServiceAccount's token (secret)."""
    ca_cert: pulumi.Output[str]
    """The cluster's CA (PEM), to check the API server's certificate."""

    def __init__(self, name: str, args: KubernetesCiWakeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("buildkit-farm:index:KubernetesCiWake", name, None, opts)
        *rbac, tok = i.ci_wake_manifests(args.spec, args.nodes)
        deps = scale_role(name, rbac, self, args.depends_on)
        secret = k8s.core.v1.Secret(
            f"{name}-token", metadata=tok["metadata"], type=tok["type"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=deps,
                                        additional_secret_outputs=["data"]))
        self.token = pulumi.Output.secret(secret.data.apply(lambda d: _b64(d, "token")))
        self.ca_cert = secret.data.apply(lambda d: _b64(d, "ca.crt"))
        self.register_outputs({"ca_cert": self.ca_cert})


def _b64(data: Any, key: str) -> str:
    """A key of a Secret's data, decoded; empty until the token controller has filled it."""
    value = (data or {}).get(key)
    return base64.b64decode(value).decode() if value else ""
