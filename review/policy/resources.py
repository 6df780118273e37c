"""What a policy sees of a resource: the Resource model, its property values, the stack's settings.

Properties arrive in the engine's wire form (camelCase names; a secret is
``{SIG_KEY: SECRET_SIG, "value": ...}``; an unknown preview value is one of the sentinel
strings), which ``Resource.from_wire`` decodes into plain values, ``Secret`` wrappers and
``UNKNOWN``. ``get`` reads a property path through secrets and raises ``UnknownValue`` where
the preview does not know a value yet. Also here: the resource type tokens the checks match,
and the signatures of a check. No Pulumi and no pulumi-policy here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# the wire form, re-exported: the checks (and checks.py's public names) take them from here
from components.contracts.wire import SECRET_SIG as SECRET_SIG
from components.contracts.wire import SIG_KEY as SIG_KEY
from components.contracts.wire import UNKNOWN, Secret, decode
from components.contracts.wire import reveal as reveal

# Resource types (tokens as the engine reports them).
SSH_NODE = "buildkit-farm:index:SshNode"
AWS_NODE = "buildkit-farm:index:AwsNode"
K8S_NODE = "buildkit-farm:index:KubernetesNode"
K8S_FARM_NAMESPACE = "buildkit-farm:index:KubernetesFarmNamespace"
NODE_TYPES = (SSH_NODE, AWS_NODE, K8S_NODE)
REMOTE_COMMAND = "command:remote:Command"
LOCAL_COMMAND = "command:local:Command"
EC2_INSTANCE = "aws:ec2/instance:Instance"
EC2_LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
EBS_VOLUME = "aws:ebs/volume:Volume"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SSM_PARAMETER = "aws:ssm/parameter:Parameter"
K8S_CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
K8S_NAMESPACE = "kubernetes:core/v1:Namespace"
K8S_SERVICE = "kubernetes:core/v1:Service"
K8S_NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
K8S_STATEFULSET = "kubernetes:apps/v1:StatefulSet"
K8S_WORKLOADS = (
    K8S_STATEFULSET, "kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:DaemonSet",
    "kubernetes:apps/v1:ReplicaSet", "kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob",
    "kubernetes:core/v1:Pod",
)
TLS_PRIVATE_KEY = "tls:index/privateKey:PrivateKey"
TLS_SELF_SIGNED = "tls:index/selfSignedCert:SelfSignedCert"
TLS_LOCALLY_SIGNED = "tls:index/locallySignedCert:LocallySignedCert"
STACK = "pulumi:pulumi:Stack"


# ---------------------------------------------------------------------------------------------
# Values


class UnknownValue(Exception):
    """A check needed a value that is not known during this preview."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} is not known during preview")
        self.path = path


def get(value: Any, *path: str | int) -> Any:
    """``value[p0][p1]...`` with secrets unwrapped; None if absent; UnknownValue if not known."""
    cur = value
    walked: list[str] = []
    for p in path:
        cur = cur.value if isinstance(cur, Secret) else cur
        if cur is UNKNOWN:
            raise UnknownValue(".".join(walked) or ".")
        walked.append(str(p))
        if isinstance(p, int):
            cur = cur[p] if isinstance(cur, list) and -len(cur) <= p < len(cur) else None
        else:
            cur = cur.get(p) if isinstance(cur, Mapping) else None
        if cur is None:
            return None
    while isinstance(cur, Secret):
        cur = cur.value
    if cur is UNKNOWN:
        raise UnknownValue(".".join(walked))
    return cur


@dataclass(frozen=True)
class Resource:
    """One resource as a policy sees it: inputs (resource policies) or outputs (stack policies)."""

    type: str
    name: str
    urn: str = ""
    props: Mapping[str, Any] = field(default_factory=dict)
    protect: bool = False
    additional_secret_outputs: tuple[str, ...] = ()
    parent_urn: str | None = None

    @classmethod
    def from_wire(cls, type: str, name: str, props: Mapping[str, Any], *, urn: str = "",
                  protect: bool = False, additional_secret_outputs: Sequence[str] = (),
                  parent_urn: str | None = None) -> Resource:
        return cls(type=type, name=name, urn=urn, props=decode(dict(props)), protect=bool(protect),
                   additional_secret_outputs=tuple(additional_secret_outputs), parent_urn=parent_urn or None)

    @property
    def parent_types(self) -> tuple[str, ...]:
        """Types of the parents, outermost first, as the URN records them (Stack excluded)."""
        parts = self.urn.split("::")
        return tuple(parts[2].split("$")[:-1]) if len(parts) >= 4 else ()

    def under(self, component_type: str) -> bool:
        return component_type in self.parent_types


@dataclass(frozen=True)
class Settings:
    """What the pack reads from the stack's config (the opt-ins the program also honours)."""

    port: int = 1234
    allow_open_ingress: bool = False
    #: metrics.port (0: off): the mTLS metrics endpoint, the one other port ingress may open
    metrics_port: int = 0

    @classmethod
    def from_stack_config(cls, config: Mapping[str, str]) -> Settings:
        """From the engine's stack config (``buildkit-farm:<key>`` -> JSON or plain text)."""
        def value(key: str) -> Any:
            raw = config.get(f"buildkit-farm:{key}")
            if raw is None:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                return raw
        def number(section: Any, default: int) -> int:
            v = section.get("port") if isinstance(section, dict) else None
            return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else default
        return cls(port=number(value("buildkit"), 1234), allow_open_ingress=value("allowOpenIngress") is True,
                   metrics_port=number(value("metrics"), 0))

    @property
    def ports(self) -> tuple[int, ...]:
        """The ports ingress may open: the build port, and the metrics port when it is on."""
        return (self.port, self.metrics_port) if self.metrics_port else (self.port,)


Violation = tuple[str, str | None]
ResourceCheck = Callable[[Resource, Settings], list[str]]
StackCheck = Callable[[Sequence[Resource], Settings], list[Violation]]
