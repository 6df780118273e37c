"""buildkit-farm's policies as pure functions over resource properties.

No Pulumi and no pulumi-policy here: ``__main__.py`` (the pack) wires these
functions into pulumi-policy, and tests/unit/test_policy.py calls them directly
with properties in the engine's wire form (camelCase names; a secret is
``{SIG_KEY: SECRET_SIG, "value": ...}``; an unknown preview value is one of the
sentinel strings), which ``Resource.from_wire`` decodes into plain values,
``Secret`` wrappers and ``UNKNOWN``.

A resource check returns messages (one per violation); a stack check returns
(message, urn) pairs. A check that needs a value the preview does not know yet
raises ``UnknownValue``: the pack reports it the way pulumi-policy reports
unknowns (an advisory "can't run during preview"), and ``pulumi up`` runs the
check again with every input known.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import ipaddress
import json
import re
import shlex
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: How the engine marks a secret inside a property map (sdk/go/common/resource/properties.go).
SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
#: The engine's placeholders for values a preview does not know (bool, number, string, array,
#: asset, archive, object).
UNKNOWN_SENTINELS = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7", "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9", "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
    "030794c1-ac77-496b-92df-f27374a8bd58", "e48ece36-62e2-4504-bad9-02848725956a",
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
})

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

#: The private-key outputs of tls PrivateKey (all must be secret).
KEY_OUTPUTS = ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh")
PRIVATE_KEY_RE = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----")
DIGEST_RE = re.compile(r"@sha256:[0-9a-f]{64}$")
HOURS_PER_YEAR = 24 * 365


# ---------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class Secret:
    """A value the engine holds as a secret."""

    value: Any


class _Unknown:
    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


#: A value the preview does not know yet (computed during the update).
UNKNOWN = _Unknown()


class UnknownValue(Exception):
    """A check needed a value that is not known during this preview."""

    def __init__(self, path: str) -> None:
        super().__init__(f"{path} is not known during preview")
        self.path = path


def decode(wire: Any) -> Any:
    """Engine wire form -> plain values, ``Secret`` and ``UNKNOWN``."""
    if isinstance(wire, str) and wire in UNKNOWN_SENTINELS:
        return UNKNOWN
    if isinstance(wire, Mapping):
        if wire.get(SIG_KEY) == SECRET_SIG:
            return Secret(decode(wire.get("value")))
        return {str(k): decode(v) for k, v in wire.items()}
    if isinstance(wire, list | tuple):
        return [decode(v) for v in wire]
    return wire


def reveal(value: Any) -> Any:
    """The value with every ``Secret`` unwrapped (for reading contents, not secretness)."""
    if isinstance(value, Secret):
        return reveal(value.value)
    if isinstance(value, Mapping):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


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


def known(value: Any) -> bool:
    """True if nothing in ``value`` is unknown."""
    if value is UNKNOWN:
        return False
    if isinstance(value, Secret):
        return known(value.value)
    if isinstance(value, Mapping):
        return all(known(v) for v in value.values())
    if isinstance(value, list):
        return all(known(v) for v in value)
    return True


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
        buildkit = value("buildkit")
        port = buildkit.get("port") if isinstance(buildkit, dict) else None
        return cls(port=int(port) if isinstance(port, int | float) and not isinstance(port, bool) else 1234,
                   allow_open_ingress=value("allowOpenIngress") is True)


Violation = tuple[str, str | None]
ResourceCheck = Callable[[Resource, Settings], list[str]]
StackCheck = Callable[[Sequence[Resource], Settings], list[Violation]]


# ---------------------------------------------------------------------------------------------
# What nodes carry: the bootstrap payload (SSH create, EC2 user data), buildkitd.toml, pod args

_HEREDOC_RE = re.compile(
    r"cat > '(?P<path>[^']+)\.new' <<'(?P<marker>BKF_EOF_[0-9a-f]+)'\n(?P<body>.*?)\n(?P=marker)\n", re.S)
_INSTALL_RE = re.compile(r"bkf-node\.sh'?\s+install\b")
_BUILDKITD_LINE_RE = re.compile(r"(?:^|[\s/'\"])buildkitd(?:['\"]?)\s+(?P<args>.*--addr.*)$")


def payload_files(payload: str) -> dict[str, str]:
    """The files a bootstrap payload writes (path -> content), from its heredocs."""
    return {m.group("path"): m.group("body") for m in _HEREDOC_RE.finditer(payload)}


def payload_toml(payload: str) -> str | None:
    for path, body in payload_files(payload).items():
        if path.endswith("/buildkitd.toml"):
            return body
    return None


def payload_env(payload: str) -> dict[str, str]:
    for path, body in payload_files(payload).items():
        if path.endswith("/node.env"):
            return parse_env(body)
    return {}


def parse_env(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


def user_data_payload(r: Resource) -> str | None:
    """An EC2 instance's (or launch template's) user data as text: base64, gzipped or not."""
    b64 = get(r.props, "userDataBase64")
    if b64 is None:
        plain = get(r.props, "userData")
        return str(plain) if plain is not None else None
    try:
        raw = base64.b64decode(str(b64), validate=True)
    except (binascii.Error, ValueError):
        return ""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError):
            return ""
    return raw.decode("utf-8", "replace")


def _toml(text: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return tomllib.loads(text), None
    except tomllib.TOMLDecodeError as e:
        return None, f"buildkitd.toml does not parse ({e})"


def toml_tls_problems(text: str) -> list[str]:
    """mTLS on every TCP listener, and no unauthenticated debug listener."""
    doc, err = _toml(text)
    if doc is None:
        return [str(err)]
    grpc: dict[str, Any] = doc["grpc"] if isinstance(doc.get("grpc"), dict) else {}
    addrs = grpc.get("address", [])
    addrs = [addrs] if isinstance(addrs, str) else [str(a) for a in addrs or []]
    tcp = [a for a in addrs if a.startswith("tcp://")]
    tls: dict[str, Any] = grpc["tls"] if isinstance(grpc.get("tls"), dict) else {}
    missing = [k for k in ("cert", "key", "ca") if not tls.get(k)]
    problems = []
    if tcp and missing:
        why = " (without a CA any client may connect)" if missing == ["ca"] else ""
        problems.append(f"buildkitd.toml serves {', '.join(tcp)} without mutual TLS: "
                        f"[grpc.tls] {', '.join(missing)} missing{why}")
    if grpc.get("debugAddress"):
        problems.append(f"buildkitd.toml sets debugAddress {grpc['debugAddress']!r}, which serves pprof and "
                        "/metrics without authentication")
    return problems


def toml_entitlements(text: str) -> list[str]:
    doc, _ = _toml(text)
    if doc is None:
        return []
    ents = doc.get("insecure-entitlements") or []
    return [str(e) for e in ([ents] if isinstance(ents, str) else ents)]


def flag_values(args: Sequence[str], flag: str) -> list[str]:
    """Values of ``--flag v`` and ``--flag=v`` in an argv."""
    out = []
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            out.append(args[i + 1])
        elif a.startswith(flag + "="):
            out.append(a[len(flag) + 1:])
    return out


def args_tls_problems(args: Sequence[str]) -> list[str]:
    tcp = [a for a in flag_values(args, "--addr") if a.startswith("tcp://")]
    missing = [f for f in ("--tlscacert", "--tlscert", "--tlskey") if not flag_values(args, f)]
    problems = []
    if tcp and missing:
        problems.append(f"buildkitd serves {', '.join(tcp)} without mutual TLS: {', '.join(missing)} missing")
    if flag_values(args, "--debugaddr"):
        problems.append("buildkitd runs with --debugaddr (pprof and /metrics without authentication)")
    return problems


def _buildkitd_lines(script: str) -> list[list[str]]:
    """argv of direct `buildkitd ... --addr ...` invocations in a shell script."""
    out = []
    for line in script.splitlines():
        if line.lstrip().startswith("#"):
            continue
        m = _BUILDKITD_LINE_RE.search(line)
        if m:
            try:
                out.append(shlex.split(m.group("args"), comments=True))
            except ValueError:
                out.append(m.group("args").split())
    return out


def pod_spec(r: Resource) -> Mapping[str, Any] | None:
    if r.type == "kubernetes:core/v1:Pod":
        spec = get(r.props, "spec")
    elif r.type == "kubernetes:batch/v1:CronJob":
        spec = get(r.props, "spec", "jobTemplate", "spec", "template", "spec")
    else:
        spec = get(r.props, "spec", "template", "spec")
    return spec if isinstance(spec, Mapping) else None


def containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        out += [c for c in (get(spec, key) or []) if isinstance(c, Mapping)]
    return out


def _is_buildkitd(c: Mapping[str, Any]) -> bool:
    image = str(get(c, "image") or "")
    argv = [str(a) for a in (get(c, "command") or []) + (get(c, "args") or [])]
    return "buildkit" in image.rsplit("/", 1)[-1] or any("buildkitd" in a for a in argv) or "--addr" in argv


def _argv(c: Mapping[str, Any]) -> list[str]:
    return [str(a) for a in (get(c, "command") or []) + (get(c, "args") or [])]


def _secret_mounted(spec: Mapping[str, Any], c: Mapping[str, Any], path: str) -> bool:
    """Is ``path`` inside a volume mount whose volume comes from a Secret?"""
    mounts = sorted((m for m in get(c, "volumeMounts") or [] if isinstance(m, Mapping)),
                    key=lambda m: len(str(get(m, "mountPath") or "")), reverse=True)
    for m in mounts:
        mp = str(get(m, "mountPath") or "").rstrip("/")
        if mp and (path == mp or path.startswith(mp + "/")):
            vol = next((v for v in get(spec, "volumes") or [] if get(v, "name") == get(m, "name")), None)
            if vol is None:
                return False
            if get(vol, "secret") is not None:
                return True
            sources = get(vol, "projected", "sources") or []
            return any(get(s, "secret") is not None for s in sources)
    return False


# ---------------------------------------------------------------------------------------------
# Mandatory: every node serves mTLS only


def _payload_problems(label: str, payload: str, stdin: Any, has_stdin: bool) -> list[str]:
    problems = []
    toml = payload_toml(payload)
    if toml is not None:
        problems += [f"{label}: {p}" for p in toml_tls_problems(toml)]
    elif _INSTALL_RE.search(payload):
        problems.append(f"{label}: installs buildkitd but carries no buildkitd.toml, so mTLS cannot be verified")
    for argv in _buildkitd_lines(payload):
        problems += [f"{label}: {p}" for p in args_tls_problems(argv)]
    if toml is not None or _INSTALL_RE.search(payload):
        env = payload_env(payload)
        source = env.get("BKF_CERT_SOURCE", "")
        if source == "stdin":
            if not has_stdin:
                problems.append(f"{label}: certificates should arrive on stdin, but the command has no stdin")
            elif stdin is not UNKNOWN:
                bundle = str(reveal(stdin) or "")
                lacking = [f for f in ("ca.pem", "cert.pem", "key.pem") if f"### {f}" not in bundle]
                if lacking:
                    problems.append(f"{label}: the certificate bundle on stdin lacks {', '.join(lacking)}")
        elif source == "ssm" and not env.get("BKF_SSM_PREFIX"):
            problems.append(f"{label}: certificates come from SSM but BKF_SSM_PREFIX is empty")
        elif source not in ("stdin", "ssm", "files"):
            problems.append(f"{label}: no certificate source (BKF_CERT_SOURCE={source!r})")
    return problems


def nodes_serve_mtls(r: Resource, s: Settings) -> list[str]:
    """Every buildkitd listener on TCP requires client certificates, and the node gets its TLS material."""
    if r.type == REMOTE_COMMAND:
        payload = get(r.props, "create")
        if payload is None:
            return []
        stdin = r.props.get("stdin")
        return _payload_problems(f"command {r.name}", str(payload), stdin,
                                 stdin is not None and stdin != "")
    if r.type in (EC2_INSTANCE, EC2_LAUNCH_TEMPLATE):
        payload = user_data_payload(r)
        if payload is None:
            return [f"instance {r.name} has no user data: no buildkitd configuration to verify"] \
                if r.under(AWS_NODE) else []
        if payload == "":
            return [f"instance {r.name}: user data is not valid base64 (gzip): cannot verify mTLS"]
        return _payload_problems(f"instance {r.name} user data", payload, None, False)
    if r.type == K8S_CONFIG_MAP:
        toml = get(r.props, "data", "buildkitd.toml")
        return [f"ConfigMap {r.name}: {p}" for p in toml_tls_problems(str(toml))] if toml is not None else []
    if r.type in K8S_WORKLOADS:
        spec = pod_spec(r)
        if spec is None:
            return []
        problems = []
        for c in containers(spec):
            if not _is_buildkitd(c):
                continue
            argv = _argv(c)
            label = f"{r.name} container {get(c, 'name')}"
            problems += [f"{label}: {p}" for p in args_tls_problems(argv)]
            for flag in ("--tlscacert", "--tlscert", "--tlskey"):
                for path in flag_values(argv, flag):
                    if not _secret_mounted(spec, c, path):
                        problems.append(f"{label}: {flag} {path} is not mounted from a Secret")
        return problems
    return []


# ---------------------------------------------------------------------------------------------
# Mandatory: EC2 requires IMDSv2 (hop limit 1) and encrypts every volume


def _imds_problems(label: str, mo: Any) -> list[str]:
    if not isinstance(mo, Mapping):
        return [f"{label}: metadataOptions not set, so IMDSv1 may stay enabled; set httpTokens: required and "
                "httpPutResponseHopLimit: 1"]
    if get(mo, "httpEndpoint") == "disabled":
        return []
    problems = []
    if get(mo, "httpTokens") != "required":
        problems.append(f"{label}: metadataOptions.httpTokens is {get(mo, 'httpTokens')!r}, not 'required' "
                        "(IMDSv1 answers without a token)")
    hop = get(mo, "httpPutResponseHopLimit")
    if hop is None or float(hop) != 1:
        problems.append(f"{label}: metadataOptions.httpPutResponseHopLimit is {hop!r}, not 1 "
                        "(containers on the host could fetch the instance role's credentials)")
    return problems


def _encrypted(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.lower() == "true")


def ec2_imdsv2_and_encryption(r: Resource, s: Settings) -> list[str]:
    if r.type == EC2_INSTANCE:
        label = f"instance {r.name}"
        problems = _imds_problems(label, get(r.props, "metadataOptions"))
        root = get(r.props, "rootBlockDevice")
        if not isinstance(root, Mapping):
            problems.append(f"{label}: rootBlockDevice not set, so root volume encryption depends on the "
                            "account default; set encrypted: true")
        elif not _encrypted(get(root, "encrypted")):
            problems.append(f"{label}: root volume is not encrypted")
        for i, d in enumerate(get(r.props, "ebsBlockDevices") or []):
            if not _encrypted(get(d, "encrypted")):
                problems.append(f"{label}: ebsBlockDevices[{i}] ({get(d, 'deviceName')}) is not encrypted")
        return problems
    if r.type == EC2_LAUNCH_TEMPLATE:
        label = f"launch template {r.name}"
        problems = _imds_problems(label, get(r.props, "metadataOptions"))
        for i, m in enumerate(get(r.props, "blockDeviceMappings") or []):
            ebs = get(m, "ebs")
            if isinstance(ebs, Mapping) and not _encrypted(get(ebs, "encrypted")):
                problems.append(f"{label}: blockDeviceMappings[{i}] is not encrypted")
        return problems
    if r.type == EBS_VOLUME and not _encrypted(get(r.props, "encrypted")):
        return [f"volume {r.name} is not encrypted"]
    return []


# ---------------------------------------------------------------------------------------------
# Mandatory: ingress only on the build port, never from everywhere without the opt-in

OPT_IN = "set buildkit-farm:allowOpenIngress true to allow it explicitly"


def _open(cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return False


def _port_range_problems(label: str, protocol: Any, lo: Any, hi: Any, s: Settings) -> list[str]:
    proto = str(protocol).lower()
    if proto not in ("tcp", "6"):
        return [f"{label}: protocol {protocol!r} is open; only TCP {s.port} (the build port) may be"]
    try:
        ports = (int(float(lo)), int(float(hi)))
    except (TypeError, ValueError):
        return [f"{label}: no port range; only TCP {s.port} may be open"]
    if ports != (s.port, s.port):
        return [f"{label}: opens TCP {ports[0]}-{ports[1]}; only {s.port} (the build port) may be open"]
    return []


def _source_problems(label: str, cidrs: Sequence[Any], s: Settings) -> list[str]:
    wide = [str(c) for c in cidrs if _open(str(c))]
    if wide and not s.allow_open_ingress:
        return [f"{label}: admits {', '.join(wide)} (everyone); {OPT_IN}"]
    return []


def ingress_build_port_only(r: Resource, s: Settings) -> list[str]:
    problems: list[str] = []
    if r.type == SECURITY_GROUP:
        for i, rule in enumerate(get(r.props, "ingress") or []):
            label = f"security group {r.name} ingress[{i}]"
            problems += _port_range_problems(label, get(rule, "protocol"), get(rule, "fromPort"),
                                             get(rule, "toPort"), s)
            problems += _source_problems(label, [*(get(rule, "cidrBlocks") or []),
                                                 *(get(rule, "ipv6CidrBlocks") or [])], s)
    elif r.type == SECURITY_GROUP_RULE and get(r.props, "type") == "ingress":
        label = f"security group rule {r.name}"
        problems += _port_range_problems(label, get(r.props, "protocol"), get(r.props, "fromPort"),
                                         get(r.props, "toPort"), s)
        problems += _source_problems(label, [*(get(r.props, "cidrBlocks") or []),
                                             *(get(r.props, "ipv6CidrBlocks") or [])], s)
    elif r.type == SG_INGRESS_RULE:
        label = f"ingress rule {r.name}"
        problems += _port_range_problems(label, get(r.props, "ipProtocol"), get(r.props, "fromPort"),
                                         get(r.props, "toPort"), s)
        problems += _source_problems(label, [c for c in (get(r.props, "cidrIpv4"), get(r.props, "cidrIpv6"))
                                             if c], s)
    elif r.type == K8S_NETWORK_POLICY:
        for i, rule in enumerate(get(r.props, "spec", "ingress") or []):
            label = f"NetworkPolicy {r.name} ingress[{i}]"
            ports = get(rule, "ports") or []
            if not ports:
                problems.append(f"{label}: allows every port; only TCP {s.port} (the build port) may be open")
            for p in ports:
                proto = str(get(p, "protocol") or "TCP")
                if proto != "TCP" or get(p, "port") not in (s.port, "buildkitd") or get(p, "endPort"):
                    problems.append(f"{label}: allows {proto} {get(p, 'port')}; only TCP {s.port} may be open")
            peers = get(rule, "from") or []
            if not peers and not s.allow_open_ingress:
                problems.append(f"{label}: no 'from', so every source may connect; {OPT_IN}")
            problems += _source_problems(label, [get(p, "ipBlock", "cidr") for p in peers
                                                 if get(p, "ipBlock", "cidr")], s)
    elif r.type == K8S_SERVICE:
        label = f"Service {r.name}"
        for p in get(r.props, "spec", "ports") or []:
            target = get(p, "targetPort") if get(p, "targetPort") is not None else get(p, "port")
            if target not in (s.port, "buildkitd"):
                problems.append(f"{label}: exposes port {target}; only {s.port} (the build port) may be exposed")
        if get(r.props, "spec", "type") == "LoadBalancer":
            ranges = get(r.props, "spec", "loadBalancerSourceRanges") or []
            if not ranges and not s.allow_open_ingress:
                problems.append(f"{label}: a LoadBalancer without loadBalancerSourceRanges admits everyone; {OPT_IN}")
            problems += _source_problems(label, ranges, s)
    return problems


# ---------------------------------------------------------------------------------------------
# Mandatory: Kubernetes images pinned by digest


def image_pinned_by_digest(r: Resource, s: Settings) -> list[str]:
    if r.type not in K8S_WORKLOADS:
        return []
    spec = pod_spec(r)
    if spec is None:
        return []
    return [f"{r.name} container {get(c, 'name')}: image {get(c, 'image')!r} is not pinned by digest "
            "(name:tag@sha256:<64 hex>)"
            for c in containers(spec) if not DIGEST_RE.search(str(get(c, "image") or ""))]


# ---------------------------------------------------------------------------------------------
# Mandatory: no insecure entitlements


def no_insecure_entitlements(r: Resource, s: Settings) -> list[str]:
    tomls: list[tuple[str, str]] = []
    argvs: list[tuple[str, list[str]]] = []
    if r.type == REMOTE_COMMAND:
        payload = get(r.props, "create")
        if payload is not None:
            toml = payload_toml(str(payload))
            if toml is not None:
                tomls.append((f"command {r.name}", toml))
            argvs += [(f"command {r.name}", a) for a in _buildkitd_lines(str(payload))]
    elif r.type in (EC2_INSTANCE, EC2_LAUNCH_TEMPLATE):
        payload = user_data_payload(r)
        if payload:
            toml = payload_toml(payload)
            if toml is not None:
                tomls.append((f"instance {r.name} user data", toml))
            argvs += [(f"instance {r.name} user data", a) for a in _buildkitd_lines(payload)]
    elif r.type == K8S_CONFIG_MAP:
        toml = get(r.props, "data", "buildkitd.toml")
        if toml is not None:
            tomls.append((f"ConfigMap {r.name}", str(toml)))
    elif r.type in K8S_WORKLOADS:
        spec = pod_spec(r)
        for c in containers(spec) if spec else []:
            argvs.append((f"{r.name} container {get(c, 'name')}", _argv(c)))
    elif r.type == LOCAL_COMMAND:
        script = str(get(r.props, "create") or "")
        if "--allow-insecure-entitlement" in script:
            return [f"command {r.name} passes --allow-insecure-entitlement"]
    problems = []
    for label, toml in tomls:
        ents = toml_entitlements(toml)
        if ents:
            problems.append(f"{label}: buildkitd.toml allows insecure entitlements {ents}")
    for label, argv in argvs:
        ents = flag_values(argv, "--allow-insecure-entitlement")
        if ents:
            problems.append(f"{label}: buildkitd runs with --allow-insecure-entitlement {', '.join(ents)}")
    return problems


# ---------------------------------------------------------------------------------------------
# Mandatory: private keys only in secrets


def plaintext_private_keys(value: Any, path: str = "") -> list[str]:
    """Paths of strings holding a PEM private key that are not inside a secret."""
    if isinstance(value, Secret):
        return []
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in plaintext_private_keys(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in plaintext_private_keys(v, f"{path}[{i}]")]
    if isinstance(value, str) and PRIVATE_KEY_RE.search(value):
        return [path or "."]
    return []


def _holds_key(value: Any) -> bool:
    return any(isinstance(v, str) and PRIVATE_KEY_RE.search(v) for v in _strings(reveal(value)))


def _strings(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    else:
        yield value


def private_keys_only_in_secret_inputs(r: Resource, s: Settings) -> list[str]:
    problems = [f"{r.type.rsplit(':', 1)[-1]} {r.name}: a private key in plain text at {p}; "
                "make it secret (pulumi.Output.secret)" for p in plaintext_private_keys(r.props)]
    if r.type == TLS_PRIVATE_KEY:
        missing = [k for k in KEY_OUTPUTS if k not in r.additional_secret_outputs]
        if missing:
            problems.append(f"PrivateKey {r.name}: outputs {', '.join(missing)} are not declared secret "
                            "(additional_secret_outputs)")
    elif r.type == K8S_CONFIG_MAP and _holds_key(r.props.get("data")):
        problems.append(f"ConfigMap {r.name} holds a private key: keys belong in a Secret")
    elif r.type == SSM_PARAMETER and _holds_key(r.props.get("value")) \
            and get(r.props, "type") != "SecureString":
        problems.append(f"SSM parameter {r.name} holds a private key but is of type {get(r.props, 'type')!r}, "
                        "not SecureString")
    return problems


def private_keys_only_in_secret_outputs(resources: Sequence[Resource], s: Settings) -> list[Violation]:
    """Stack check: no output of any resource (stack outputs included) holds a plain-text key."""
    out: list[Violation] = []
    for r in resources:
        where = "stack output" if r.type == STACK else f"{r.type.rsplit(':', 1)[-1]} {r.name} output"
        for p in plaintext_private_keys(r.props):
            out.append((f"{where} {p.lstrip('.')} holds a private key in plain text; export it with "
                        "pulumi.Output.secret", r.urn or None))
    return out


# ---------------------------------------------------------------------------------------------
# Advisory


def cache_volume_protected(r: Resource, s: Settings) -> list[str]:
    if r.type == EBS_VOLUME and not r.protect:
        return [f"cache volume {r.name} is not protected: `pulumi destroy` (or a replacement) deletes the "
                "build cache; set volume.protect: true"]
    if r.type == K8S_NAMESPACE and r.under(K8S_FARM_NAMESPACE) and not r.protect:
        return [f"namespace {r.name} is not protected: deleting it deletes every node's cache PVC; "
                "set volume.protect: true"]
    if r.type == K8S_STATEFULSET:
        policy = get(r.props, "spec", "persistentVolumeClaimRetentionPolicy") or {}
        if get(policy, "whenDeleted") != "Retain":
            return [f"StatefulSet {r.name} deletes its cache PVC with it (persistentVolumeClaimRetentionPolicy."
                    "whenDeleted is not Retain)"]
    if r.type == REMOTE_COMMAND and r.under(SSH_NODE) and "--purge-state" in str(get(r.props, "delete") or ""):
        return [f"command {r.name}: `pulumi destroy` deletes the node's build cache "
                "(ssh.removeStateOnDestroy: true)"]
    return []


def cert_validity_at_most_a_year(r: Resource, s: Settings) -> list[str]:
    if r.type not in (TLS_LOCALLY_SIGNED, TLS_SELF_SIGNED) or get(r.props, "isCaCertificate") is True:
        return []
    hours = get(r.props, "validityPeriodHours")
    if hours is not None and float(hours) > HOURS_PER_YEAR:
        return [f"certificate {r.name} is valid for {int(float(hours))} h ({float(hours) / 24:.0f} days), more "
                f"than a year ({HOURS_PER_YEAR} h): a leaked key stays usable that long; lower pki.validityHours"]
    return []


def node_platform(node: Resource, resources: Sequence[Resource]) -> str | None:
    """A node component's platform, read from its children (payload env, EC2 tag, pod nodeSelector)."""
    for c in resources:
        if c.parent_urn != node.urn:
            continue
        try:
            if c.type == REMOTE_COMMAND:
                env = payload_env(str(get(c.props, "create") or ""))
                if env.get("BKF_PLATFORM"):
                    return env["BKF_PLATFORM"]
            elif c.type == EC2_INSTANCE:
                tag = get(c.props, "tags", "buildkit-farm/platform")
                if tag:
                    return str(tag)
            elif c.type == K8S_STATEFULSET:
                arch = get(c.props, "spec", "template", "spec", "nodeSelector", "kubernetes.io/arch")
                if arch:
                    return f"linux/{arch}"
        except UnknownValue:
            continue
    return None


def more_than_one_node_per_platform(resources: Sequence[Resource], s: Settings) -> list[Violation]:
    by_platform: dict[str, list[str]] = {}
    for n in resources:
        if n.type in NODE_TYPES:
            platform = node_platform(n, resources)
            if platform:
                by_platform.setdefault(platform, []).append(n.name)
    return [(f"{p} has a single node ({names[0]}): while it restarts or is down, every {p} build fails; "
             "add a second node for it", None)
            for p, names in sorted(by_platform.items()) if len(names) == 1]


# ---------------------------------------------------------------------------------------------
# The catalogue the pack registers


@dataclass(frozen=True)
class PolicySpec:
    name: str
    description: str
    mandatory: bool
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None


POLICIES: tuple[PolicySpec, ...] = (
    PolicySpec("nodes-serve-mtls-only",
               "Every buildkitd serves TCP only with mutual TLS (cert, key and CA) and gets its TLS material; "
               "no plaintext or debug listener.", True, resource_check=nodes_serve_mtls),
    PolicySpec("ec2-imdsv2-and-encrypted-volumes",
               "EC2 nodes require IMDSv2 with hop limit 1, and every EBS volume is encrypted.", True,
               resource_check=ec2_imdsv2_and_encryption),
    PolicySpec("ingress-build-port-only",
               "Ingress only on the build port, and never from everywhere without allowOpenIngress.", True,
               resource_check=ingress_build_port_only),
    PolicySpec("kubernetes-image-pinned-by-digest",
               "Kubernetes workloads run images pinned by digest.", True, resource_check=image_pinned_by_digest),
    PolicySpec("no-insecure-entitlements",
               "buildkitd allows no insecure entitlements (security.insecure, network.host, device).", True,
               resource_check=no_insecure_entitlements),
    PolicySpec("private-keys-only-in-secret-inputs",
               "Private keys reach resources only as secrets (and never through a ConfigMap or a plain SSM "
               "parameter).", True, resource_check=private_keys_only_in_secret_inputs),
    PolicySpec("private-keys-only-in-secret-outputs",
               "No output (stack outputs included) holds a private key in plain text.", True,
               stack_check=private_keys_only_in_secret_outputs),
    PolicySpec("cache-volume-protected",
               "The build cache survives `pulumi destroy` and replacements.", False,
               resource_check=cache_volume_protected),
    PolicySpec("cert-validity-at-most-a-year",
               "Leaf certificates are valid for at most a year.", False,
               resource_check=cert_validity_at_most_a_year),
    PolicySpec("more-than-one-node-per-platform",
               "Each platform has more than one node, so one node's restart does not stop its builds.", False,
               stack_check=more_than_one_node_per_platform),
)
