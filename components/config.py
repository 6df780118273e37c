"""Stack configuration: one typed model, validated in one place.

``parse_config`` takes the raw stack config (the ``buildkit-farm:*`` keys as plain
Python values) and returns a :class:`FarmConfig`, or raises :class:`ConfigError`
listing *every* problem at once, each naming the key path, the bad value and what
is allowed. Nothing here touches Pulumi, so ``__main__`` can validate before a
single resource is registered.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from components import versions

BACKENDS = ("aws", "kubernetes", "ssh")
PLATFORMS = ("linux/amd64", "linux/arm64")
#: platform -> (Debian/Go arch, EC2/uname arch)
ARCH_OF = {"linux/amd64": "amd64", "linux/arm64": "arm64"}
UNAME_ARCH_OF = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}

# A node name becomes a buildx node name, a Kubernetes object name and a DNS
# label, so it must satisfy all three.
NODE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
# buildx builder names (`--name`), see buildx's validateName.
BUILDER_NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9.\-_]*$")
CLIENT_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
SEMVER_TAG_RE = re.compile(r"^v\d+\.\d+\.\d+$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._/:-]*:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}$")
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
AMI_ID_RE = re.compile(r"^ami-[0-9a-f]{8,17}$")
INSTANCE_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
ZONE_ID_RE = re.compile(r"^Z[A-Z0-9]{1,32}$")
DNS_NAME_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
K8S_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
QUANTITY_RE = re.compile(r"^\d+(\.\d+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
ABS_PATH_RE = re.compile(r"^/[^\0]*$")
DEVICE_PATH_RE = re.compile(r"^/[\w./:@+-]+$")
SSH_PUBKEY_RE = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+=*( .*)?$")

# Graviton families: a1, t4g and every "<letters><gen>g<suffix>" family (c7g,
# m7gd, c6gn, x2gd, im4gn, is4gen, hpc7g, g5g ...). Everything else is x86_64.
_GRAVITON_FAMILY_RE = re.compile(r"^(a1|[a-z]+\d+g[a-z]*)$")

DEFAULT_INSTANCE_TYPE = {"linux/arm64": "c7g.xlarge", "linux/amd64": "c7i.xlarge"}
SERVICE_TYPES = ("LoadBalancer", "NodePort", "ClusterIP")
ALGORITHMS = ("ECDSA", "RSA")
ECDSA_CURVES = ("P256", "P384")  # P224 (the provider default) breaks Go TLS
RSA_BITS = (2048, 3072, 4096)


def instance_arch(instance_type: str) -> str:
    """The CPU architecture ("arm64" or "x86_64") of an EC2 instance type."""
    family = instance_type.split(".", 1)[0]
    return "arm64" if _GRAVITON_FAMILY_RE.match(family) else "x86_64"


class ConfigError(Exception):
    """All problems found in the stack config, one per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid buildkit-farm config ({len(self.problems)} problem(s)):\n{lines}")


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class NodeSpec:
    name: str
    platform: str
    #: aws: instance type (validated against the platform)
    instance_type: str | None = None
    #: ssh: the address clients dial and Pulumi connects to (IP or DNS name)
    host: str | None = None
    ssh_port: int = 22
    ssh_user: str = "root"
    #: ssh: the host's public key ("ssh-ed25519 AAAA..."); set, the connection is pinned to it
    ssh_host_key: str | None = None
    #: extra DNS names / IPs for the server cert (e.g. a load balancer name)
    extra_sans: tuple[str, ...] = ()
    #: ssh, test setups only: the host's real platform when it differs from
    #: `platform` (RUN steps then run under QEMU user emulation)
    host_platform: str | None = None
    #: ssh: block device for build state, formatted only when blank and mounted
    #: by filesystem UUID (use a stable path: /dev/disk/by-id/...)
    data_device: str | None = None

    @property
    def arch(self) -> str:
        return ARCH_OF[self.platform]

    @property
    def host_arch(self) -> str:
        """The arch of the machine the daemon runs on (differs only on emulated test hosts)."""
        return ARCH_OF[self.host_platform or self.platform]


@dataclass(frozen=True)
class VolumeSpec:
    size_gb: int = 100
    iops: int = 3000
    throughput_mbps: int = 125
    #: refuse deletion of the cache volume (Pulumi `protect`)
    protect: bool = True


@dataclass(frozen=True)
class BuildkitSpec:
    version: str = versions.BUILDKIT_VERSION
    #: arch -> sha256 of the release tarball
    sha256: Mapping[str, str] = field(default_factory=lambda: dict(versions.BUILDKIT_SHA256))
    image: str = versions.BUILDKIT_ROOTLESS_IMAGE
    port: int = 1234
    #: build records kept in the daemon's history
    history_max_entries: int = 200
    history_max_age_days: int = 14


@dataclass(frozen=True)
class PkiSpec:
    algorithm: str = "ECDSA"
    ecdsa_curve: str = "P256"
    rsa_bits: int = 3072
    validity_hours: int = 24 * 365
    early_renewal_hours: int = 24 * 30
    ca_validity_hours: int = 24 * 365 * 5
    clients: tuple[str, ...] = ("ci",)


@dataclass(frozen=True)
class BuilderSpec:
    enabled: bool = True
    #: empty: "bkf-<stack>", so two stacks on one machine do not share a builder
    name: str = ""
    #: how to run buildx, e.g. "docker buildx" or "docker-buildx"
    buildx: str = "docker buildx"
    #: BUILDX_CONFIG directory for the builder and its cert files (absolute).
    #: Empty: the caller's $BUILDX_CONFIG, else ~/.docker/buildx.
    config_dir: str = ""


@dataclass(frozen=True)
class AwsSpec:
    region: str = "us-east-1"
    availability_zone: str = ""
    subnet_id: str | None = None
    vpc_id: str | None = None
    #: arch ("arm64"/"x86_64") -> exact AMI id; empty means resolve the pinned name
    ami_ids: Mapping[str, str] = field(default_factory=dict)
    #: arch -> exact AMI name (deterministic lookup); defaults in versions.py
    ami_names: Mapping[str, str] = field(default_factory=lambda: dict(versions.AL2023_AMI_NAMES))
    spot: bool = False
    dns_zone_id: str | None = None
    dns_domain: str | None = None
    root_volume_gb: int = 30


@dataclass(frozen=True)
class KubernetesSpec:
    """One StatefulSet with one replica per config node (more nodes: more `nodes` entries)."""

    namespace: str = "buildkit-farm"
    service_type: str = "LoadBalancer"
    storage_class: str | None = None
    #: NodePort: node i (config order) gets the fixed nodePort base+i, so the endpoint
    #: is known before the Service exists
    node_port_base: int = 31234
    cpu_request: str = "1"
    memory_request: str = "2Gi"
    cpu_limit: str = "4"
    memory_limit: str = "8Gi"
    #: DNS names / IPs the Services are reached at from outside (cert SANs); with
    #: NodePort/ClusterIP the first one is the host clients dial (unless nodes[].host)
    external_hosts: tuple[str, ...] = ()
    #: annotations on every Service (e.g. to ask the cloud for an internal load balancer)
    service_annotations: Mapping[str, str] = field(default_factory=dict)
    #: how long a stopping pod waits for running builds before buildkitd gets SIGTERM
    drain_timeout_s: int = 600


@dataclass(frozen=True)
class SshSpec:
    #: local directory with buildkit-<version>.linux-<arch>.tar.gz or
    #: bin-<arch>/{buildkitd,buildctl}; empty: nodes download the release
    artifact_dir: str = ""
    #: path of the private key Pulumi uses to connect (secret key material is
    #: read by __main__ and never stored in config here)
    private_key_path: str = ""
    #: install/state prefix on the host, see components/node_bootstrap.py
    state_dir: str = "/var/lib/buildkit"
    remove_state_on_destroy: bool = False


@dataclass(frozen=True)
class FarmConfig:
    backend: str
    nodes: tuple[NodeSpec, ...]
    allowed_cidrs: tuple[str, ...]
    allow_open_ingress: bool
    volume: VolumeSpec
    buildkit: BuildkitSpec
    pki: PkiSpec
    builder: BuilderSpec
    aws: AwsSpec | None = None
    kubernetes: KubernetesSpec | None = None
    ssh: SshSpec | None = None

    def platforms(self) -> list[str]:
        """Platforms in config order, each once."""
        seen: list[str] = []
        for n in self.nodes:
            if n.platform not in seen:
                seen.append(n.platform)
        return seen


# --------------------------------------------------------------------------- reader


class _Reader:
    """Collects problems while pulling typed values out of nested dicts."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, path: str, value: Any, allowed: str) -> None:
        self.problems.append(f"{path}: {value!r} is not {allowed}")

    def section(self, raw: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        value = raw.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.bad(path, value, "an object")
            return {}
        self.unknown_keys(value, path)
        return value

    def unknown_keys(self, value: Mapping[str, Any], path: str, allowed: Sequence[str] | None = None) -> None:
        allowed = allowed if allowed is not None else _KNOWN_KEYS.get(_strip_index(path), ())
        for k in value:
            if k not in allowed:
                self.problems.append(
                    f"{path}.{k}: unknown key (allowed: {', '.join(sorted(allowed))})"
                )

    def string(self, raw: Mapping[str, Any], key: str, path: str, default: str | None,
               pattern: re.Pattern[str] | None = None, allowed: str = "") -> str | None:
        value = raw.get(key)
        if value is None:  # absent: the default is trusted as is
            return default
        if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
            self.bad(path, value, allowed or "a string")
            return default
        return value

    def choice(self, raw: Mapping[str, Any], key: str, path: str, default: str,
               choices: Sequence[str]) -> str:
        value = raw.get(key, default)
        if value not in choices:
            self.bad(path, value, f"one of {', '.join(choices)}")
            return default
        return str(value)

    def integer(self, raw: Mapping[str, Any], key: str, path: str, default: int,
                lo: int, hi: int, unit: str = "") -> int:
        value = raw.get(key, default)
        # YAML/JSON config may hand us "100" for 100; accept clean integer strings.
        if isinstance(value, str) and re.fullmatch(r"\d+", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            self.bad(path, value, f"an integer from {lo} to {hi}{unit}")
            return default
        return value

    def boolean(self, raw: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = raw.get(key, default)
        if isinstance(value, str) and value in ("true", "false"):
            return value == "true"
        if not isinstance(value, bool):
            self.bad(path, value, "true or false")
            return default
        return value

    def string_list(self, raw: Mapping[str, Any], key: str, path: str,
                    default: Sequence[str]) -> list[str]:
        value = raw.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.bad(path, value, "a list of strings")
            return list(default)
        return list(value)


def _strip_index(path: str) -> str:
    return re.sub(r"\[\d+\]", "[]", path)


_KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "nodes[]": ("name", "platform", "instanceType", "host", "sshPort", "sshUser", "sshHostKey", "extraSans",
                "hostPlatform", "dataDevice"),
    "volume": ("sizeGb", "iops", "throughputMbps", "protect"),
    "buildkit": ("version", "sha256", "image", "port", "historyMaxEntries", "historyMaxAgeDays"),
    "buildkit.sha256": ("amd64", "arm64"),
    "pki": ("algorithm", "ecdsaCurve", "rsaBits", "validityHours", "earlyRenewalHours",
            "caValidityHours", "clients"),
    "builder": ("enabled", "name", "buildx", "configDir"),
    "aws": ("availabilityZone", "subnetId", "vpcId", "amiIds", "amiNames", "spot", "dnsZoneId",
            "dnsDomain", "rootVolumeGb"),
    "aws.amiIds": ("arm64", "x86_64"),
    "aws.amiNames": ("arm64", "x86_64"),
    "kubernetes": ("namespace", "serviceType", "storageClass", "nodePortBase", "cpuRequest",
                   "memoryRequest", "cpuLimit", "memoryLimit", "externalHosts", "serviceAnnotations",
                   "drainTimeoutSeconds"),
    "ssh": ("artifactDir", "privateKeyPath", "stateDir", "removeStateOnDestroy"),
}

#: top-level keys of the `buildkit-farm` namespace
TOP_LEVEL_KEYS = ("backend", "nodes", "allowedCidrs", "allowOpenIngress", "volume", "buildkit",
                  "pki", "builder", "aws", "kubernetes", "ssh")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _host_ok(value: str) -> bool:
    return _is_ip(value) or bool(DNS_NAME_RE.match(value))


# --------------------------------------------------------------------------- sections


def _nodes(r: _Reader, raw: Mapping[str, Any], backend: str) -> list[NodeSpec]:
    value = raw.get("nodes")
    if value is None or value == []:
        r.problems.append("nodes: no nodes configured; give at least one "
                          "(e.g. {name: arm64-1, platform: linux/arm64})")
        return []
    if not isinstance(value, list):
        r.bad("nodes", value, "a list of node objects")
        return []
    nodes: list[NodeSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        p = f"nodes[{i}]"
        if not isinstance(item, Mapping):
            r.bad(p, item, "an object with name and platform")
            continue
        r.unknown_keys(item, p)
        name = item.get("name")
        if not isinstance(name, str) or not NODE_NAME_RE.match(name):
            r.bad(f"{p}.name", name, "a node name (lower-case letters, digits and '-', "
                  "starting with a letter, 2-40 characters)")
            name = None
        elif name in seen:
            r.problems.append(f"{p}.name: {name!r} is a duplicate of nodes[{seen[name]}].name; "
                              "node names must be unique")
        else:
            seen[name] = i
        platform = item.get("platform")
        if platform not in PLATFORMS:
            r.bad(f"{p}.platform", platform, f"one of {', '.join(PLATFORMS)}")
            platform = None

        instance_type = r.string(item, "instanceType", f"{p}.instanceType", None,
                                 INSTANCE_TYPE_RE, "an EC2 instance type like c7g.xlarge")
        if backend == "aws" and platform is not None:
            if instance_type is None:
                instance_type = DEFAULT_INSTANCE_TYPE[platform]
            else:
                want = "arm64" if platform == "linux/arm64" else "x86_64"
                if instance_arch(instance_type) != want:
                    r.problems.append(
                        f"{p}.instanceType: {instance_type!r} is an {instance_arch(instance_type)} "
                        f"type, but {p}.platform is {platform} (allowed: an {want} instance type, "
                        f"e.g. {DEFAULT_INSTANCE_TYPE[platform]})")
        host = r.string(item, "host", f"{p}.host", None)
        if host is not None and not _host_ok(host):
            r.bad(f"{p}.host", host, "an IP address or DNS name")
            host = None
        if backend == "ssh" and "host" not in item:
            r.problems.append(f"{p}.host: missing; the ssh backend needs the address of each host")
        port = r.integer(item, "sshPort", f"{p}.sshPort", 22, 1, 65535)
        user = r.string(item, "sshUser", f"{p}.sshUser", "root",
                        re.compile(r"^[a-z_][a-z0-9_-]{0,31}$"), "a POSIX user name") or "root"
        host_key = r.string(item, "sshHostKey", f"{p}.sshHostKey", None, SSH_PUBKEY_RE,
                            "an SSH public key like 'ssh-ed25519 AAAA...'")
        extra = r.string_list(item, "extraSans", f"{p}.extraSans", [])
        for j, san in enumerate(extra):
            if not _host_ok(san):
                r.bad(f"{p}.extraSans[{j}]", san, "an IP address or DNS name")
        host_platform = item.get("hostPlatform")
        if host_platform is not None:
            if backend != "ssh":
                r.problems.append(f"{p}.hostPlatform: {host_platform!r} is only allowed with "
                                  "backend ssh (emulated test hosts); real nodes build natively")
            elif host_platform not in PLATFORMS:
                r.bad(f"{p}.hostPlatform", host_platform, f"one of {', '.join(PLATFORMS)}")
                host_platform = None
        data_device = r.string(item, "dataDevice", f"{p}.dataDevice", None, DEVICE_PATH_RE,
                               "an absolute device path like /dev/disk/by-id/...")
        if data_device is not None and backend != "ssh":
            r.problems.append(f"{p}.dataDevice: {data_device!r} is only for backend ssh "
                              "(aws and kubernetes manage their own volumes)")
        if name is not None and platform is not None:
            nodes.append(NodeSpec(name=name, platform=platform, instance_type=instance_type,
                                  host=host, ssh_port=port, ssh_user=user, ssh_host_key=host_key,
                                  extra_sans=tuple(extra),
                                  host_platform=host_platform if host_platform != platform else None,
                                  data_device=data_device))
    return nodes


def _cidrs(r: _Reader, raw: Mapping[str, Any], allow_open: bool) -> list[str]:
    values = r.string_list(raw, "allowedCidrs", "allowedCidrs", [])
    out: list[str] = []
    for i, c in enumerate(values):
        try:
            net = ipaddress.ip_network(c, strict=True)
        except ValueError as e:
            r.bad(f"allowedCidrs[{i}]", c, f"a CIDR block like 10.0.0.0/16 ({e})")
            continue
        if net.prefixlen == 0 and not allow_open:
            r.problems.append(
                f"allowedCidrs[{i}]: {c!r} opens the build port to the whole internet; "
                "set allowOpenIngress: true to allow it explicitly (mTLS still applies)")
        out.append(str(net))
    return out


def _volume(r: _Reader, raw: Mapping[str, Any]) -> VolumeSpec:
    s = r.section(raw, "volume", "volume")
    d = VolumeSpec()
    return VolumeSpec(
        size_gb=r.integer(s, "sizeGb", "volume.sizeGb", d.size_gb, 20, 16384, " GiB"),
        iops=r.integer(s, "iops", "volume.iops", d.iops, 3000, 16000),
        throughput_mbps=r.integer(s, "throughputMbps", "volume.throughputMbps",
                                  d.throughput_mbps, 125, 1000, " MiB/s"),
        protect=r.boolean(s, "protect", "volume.protect", d.protect),
    )


def _buildkit(r: _Reader, raw: Mapping[str, Any]) -> BuildkitSpec:
    s = r.section(raw, "buildkit", "buildkit")
    d = BuildkitSpec()
    version = r.string(s, "version", "buildkit.version", d.version, SEMVER_TAG_RE,
                       "a release tag like v0.32.2") or d.version
    sha = dict(d.sha256) if version == d.version else {}
    raw_sha = s.get("sha256", None)
    if raw_sha is not None:
        if not isinstance(raw_sha, Mapping):
            r.bad("buildkit.sha256", raw_sha, "an object {amd64: <sha256>, arm64: <sha256>}")
        else:
            r.unknown_keys(raw_sha, "buildkit.sha256")
            for arch, digest in raw_sha.items():
                if arch in ("amd64", "arm64"):
                    if isinstance(digest, str) and SHA256_RE.match(digest):
                        sha[arch] = digest
                    else:
                        r.bad(f"buildkit.sha256.{arch}", digest, "a 64-digit lower-case hex sha256")
    if version != d.version and set(sha) != {"amd64", "arm64"}:
        r.problems.append(f"buildkit.sha256: {raw_sha!r} must give amd64 and arm64 checksums "
                          f"when buildkit.version ({version}) differs from the built-in pin")
    image = r.string(s, "image", "buildkit.image", d.image, IMAGE_RE,
                     "an image pinned by tag and digest (name:tag@sha256:<64 hex>)") or d.image
    return BuildkitSpec(
        version=version, sha256=sha, image=image,
        port=r.integer(s, "port", "buildkit.port", d.port, 1, 65535),
        history_max_entries=r.integer(s, "historyMaxEntries", "buildkit.historyMaxEntries",
                                      d.history_max_entries, 1, 100000),
        history_max_age_days=r.integer(s, "historyMaxAgeDays", "buildkit.historyMaxAgeDays",
                                       d.history_max_age_days, 1, 3650),
    )


def _pki(r: _Reader, raw: Mapping[str, Any]) -> PkiSpec:
    s = r.section(raw, "pki", "pki")
    d = PkiSpec()
    validity = r.integer(s, "validityHours", "pki.validityHours", d.validity_hours, 24, 24 * 3650)
    renewal = r.integer(s, "earlyRenewalHours", "pki.earlyRenewalHours", d.early_renewal_hours,
                        0, 24 * 3650)
    if renewal >= validity:
        r.problems.append(
            f"pki.earlyRenewalHours: {renewal!r} is not shorter than pki.validityHours "
            f"({validity}); certificates would be renewed on every `pulumi up` "
            "(allowed: 0 <= earlyRenewalHours < validityHours)")
    ca_validity = r.integer(s, "caValidityHours", "pki.caValidityHours", d.ca_validity_hours,
                            24, 24 * 3650 * 3)
    if ca_validity < validity:
        r.problems.append(f"pki.caValidityHours: {ca_validity!r} is shorter than "
                          f"pki.validityHours ({validity}); the CA must outlive its certificates")
    clients = r.string_list(s, "clients", "pki.clients", list(d.clients))
    if not clients:
        r.problems.append("pki.clients: [] has no client; give at least one (e.g. [ci])")
    seen: set[str] = set()
    for i, c in enumerate(clients):
        if not CLIENT_NAME_RE.match(c):
            r.bad(f"pki.clients[{i}]", c, "a client name (lower-case letters, digits, '-')")
        elif c in seen:
            r.problems.append(f"pki.clients[{i}]: {c!r} is a duplicate")
        seen.add(c)
    return PkiSpec(
        algorithm=r.choice(s, "algorithm", "pki.algorithm", d.algorithm, ALGORITHMS),
        ecdsa_curve=r.choice(s, "ecdsaCurve", "pki.ecdsaCurve", d.ecdsa_curve, ECDSA_CURVES),
        rsa_bits=_rsa_bits(r, s, d.rsa_bits),
        validity_hours=validity, early_renewal_hours=renewal, ca_validity_hours=ca_validity,
        clients=tuple(clients),
    )


def _rsa_bits(r: _Reader, s: Mapping[str, Any], default: int) -> int:
    value = s.get("rsaBits", default)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or value not in RSA_BITS:
        r.bad("pki.rsaBits", value, f"one of {', '.join(str(b) for b in RSA_BITS)}")
        return default
    return int(value)


def _builder(r: _Reader, raw: Mapping[str, Any]) -> BuilderSpec:
    s = r.section(raw, "builder", "builder")
    d = BuilderSpec()
    config_dir = r.string(s, "configDir", "builder.configDir", d.config_dir) or ""
    if config_dir and not ABS_PATH_RE.match(config_dir):
        r.bad("builder.configDir", config_dir, "an absolute path")
    buildx = r.string(s, "buildx", "builder.buildx", d.buildx,
                      re.compile(r"^[A-Za-z0-9_./ -]+$"), "a command like 'docker buildx'")
    return BuilderSpec(
        enabled=r.boolean(s, "enabled", "builder.enabled", d.enabled),
        name=r.string(s, "name", "builder.name", d.name, BUILDER_NAME_RE,
                      "a buildx builder name ([a-zA-Z][a-zA-Z0-9.-_]*)") or "",
        buildx=buildx or d.buildx,
        config_dir=config_dir,
    )


def _arch_map(r: _Reader, s: Mapping[str, Any], key: str, path: str,
              pattern: re.Pattern[str], allowed: str, default: Mapping[str, str]) -> dict[str, str]:
    out = dict(default)
    value = s.get(key)
    if value is None:
        return out
    if not isinstance(value, Mapping):
        r.bad(path, value, "an object {arm64: ..., x86_64: ...}")
        return out
    r.unknown_keys(value, path)
    for arch, v in value.items():
        if arch not in ("arm64", "x86_64"):
            continue
        if isinstance(v, str) and pattern.match(v):
            out[arch] = v
        else:
            r.bad(f"{path}.{arch}", v, allowed)
    return out


def _aws(r: _Reader, raw: Mapping[str, Any], region: str | None) -> AwsSpec:
    s = r.section(raw, "aws", "aws")
    d = AwsSpec()
    if region is None:
        r.problems.append("aws:region: missing; set it with `pulumi config set aws:region us-east-1`")
        region = d.region
    elif not REGION_RE.match(region):
        r.bad("aws:region", region, "an AWS region like us-east-1")
    az = r.string(s, "availabilityZone", "aws.availabilityZone", f"{region}a",
                  re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$"), "an availability zone like us-east-1a")
    if az and not az.startswith(region):
        r.problems.append(f"aws.availabilityZone: {az!r} is not in aws:region {region!r}")
    zone = r.string(s, "dnsZoneId", "aws.dnsZoneId", None, ZONE_ID_RE, "a Route 53 hosted zone id")
    domain = r.string(s, "dnsDomain", "aws.dnsDomain", None, DNS_NAME_RE, "a DNS domain")
    if (zone is None) != (domain is None):
        r.problems.append(f"aws.dnsZoneId/aws.dnsDomain: {zone!r}/{domain!r}: give both or neither")
    return AwsSpec(
        region=region,
        availability_zone=az or f"{region}a",
        subnet_id=r.string(s, "subnetId", "aws.subnetId", None, re.compile(r"^subnet-[0-9a-f]{8,17}$"),
                           "a subnet id like subnet-0abc1234"),
        vpc_id=r.string(s, "vpcId", "aws.vpcId", None, re.compile(r"^vpc-[0-9a-f]{8,17}$"),
                        "a VPC id like vpc-0abc1234"),
        ami_ids=_arch_map(r, s, "amiIds", "aws.amiIds", AMI_ID_RE, "an AMI id like ami-0abc12345", {}),
        ami_names=_arch_map(r, s, "amiNames", "aws.amiNames", re.compile(r"^al2023-ami-[\w.-]+$"),
                            "an exact Amazon Linux 2023 AMI name (al2023-ami-...)", d.ami_names),
        spot=r.boolean(s, "spot", "aws.spot", d.spot),
        dns_zone_id=zone,
        dns_domain=domain,
        root_volume_gb=r.integer(s, "rootVolumeGb", "aws.rootVolumeGb", d.root_volume_gb, 8, 1024, " GiB"),
    )


def _kubernetes(r: _Reader, raw: Mapping[str, Any]) -> KubernetesSpec:
    s = r.section(raw, "kubernetes", "kubernetes")
    d = KubernetesSpec()
    # `quantity * unit`: Kubernetes rejects requests above limits only at apply time.
    units = {"m": 0.001, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}

    def qty(key: str, default: str) -> str:
        return r.string(s, key, f"kubernetes.{key}", default, QUANTITY_RE,
                        "a Kubernetes quantity like 2, 500m or 4Gi") or default

    def amount(q: str) -> float:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", q)
        assert m is not None  # QUANTITY_RE checked it
        return float(m.group(1)) * units[m.group(2)]

    raw_nodes = raw.get("nodes")
    nodes = raw_nodes if isinstance(raw_nodes, list) else []

    hosts = r.string_list(s, "externalHosts", "kubernetes.externalHosts", [])
    for i, h in enumerate(hosts):
        if not _host_ok(h):
            r.bad(f"kubernetes.externalHosts[{i}]", h, "an IP address or DNS name")
    service_type = r.choice(s, "serviceType", "kubernetes.serviceType", d.service_type, SERVICE_TYPES)
    if service_type == "ClusterIP" and hosts:
        # every node listens on the same port: one shared host would give every node
        # the same endpoint, which buildx rejects
        shared = [i for i, n in enumerate(nodes) if isinstance(n, Mapping) and not n.get("host")]
        if len(shared) > 1:
            r.problems.append(
                f"kubernetes.externalHosts: {hosts!r} would make nodes "
                f"{', '.join(f'nodes[{i}]' for i in shared)} share the endpoint {hosts[0]}:<port> "
                "(serviceType ClusterIP); give each node its own nodes[].host, or use "
                "serviceType LoadBalancer or NodePort")

    base = r.integer(s, "nodePortBase", "kubernetes.nodePortBase", d.node_port_base, 30000, 32767)
    if base + max(len(nodes), 1) - 1 > 32767:
        r.problems.append(
            f"kubernetes.nodePortBase: {base!r} leaves no room for {len(nodes)} nodes "
            f"(node i gets nodePortBase+i; allowed: 30000 to {32767 - len(nodes) + 1})")

    annotations: dict[str, str] = {}
    raw_ann = s.get("serviceAnnotations")
    if raw_ann is not None:
        if not isinstance(raw_ann, Mapping):
            r.bad("kubernetes.serviceAnnotations", raw_ann, "an object of annotation: string")
        else:
            for k, v in raw_ann.items():
                prefix, _, name = str(k).rpartition("/")
                if not (isinstance(k, str) and re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?", name)
                        and (not prefix or DNS_NAME_RE.match(prefix))):
                    r.bad(f"kubernetes.serviceAnnotations.{k}", k,
                          "an annotation key ([prefix/]name, e.g. service.beta.kubernetes.io/foo)")
                elif not isinstance(v, str):
                    r.bad(f"kubernetes.serviceAnnotations.{k}", v, "a string (quote numbers and booleans)")
                else:
                    annotations[k] = v

    cpu_request, cpu_limit = qty("cpuRequest", d.cpu_request), qty("cpuLimit", d.cpu_limit)
    memory_request, memory_limit = qty("memoryRequest", d.memory_request), qty("memoryLimit", d.memory_limit)
    for what, req, lim in (("cpu", cpu_request, cpu_limit), ("memory", memory_request, memory_limit)):
        if amount(req) > amount(lim):
            r.problems.append(f"kubernetes.{what}Request: {req!r} is more than kubernetes.{what}Limit "
                              f"({lim!r}); allowed: a request at most the limit")
    return KubernetesSpec(
        namespace=r.string(s, "namespace", "kubernetes.namespace", d.namespace, K8S_NAME_RE,
                           "a namespace name (DNS label)") or d.namespace,
        service_type=service_type,
        storage_class=r.string(s, "storageClass", "kubernetes.storageClass", None, K8S_NAME_RE,
                               "a storage class name"),
        node_port_base=base,
        cpu_request=cpu_request,
        memory_request=memory_request,
        cpu_limit=cpu_limit,
        memory_limit=memory_limit,
        external_hosts=tuple(hosts),
        service_annotations=annotations,
        drain_timeout_s=r.integer(s, "drainTimeoutSeconds", "kubernetes.drainTimeoutSeconds",
                                  d.drain_timeout_s, 0, 3600),
    )


def _ssh(r: _Reader, raw: Mapping[str, Any]) -> SshSpec:
    s = r.section(raw, "ssh", "ssh")
    d = SshSpec()
    artifact_dir = r.string(s, "artifactDir", "ssh.artifactDir", "") or ""
    key_path = r.string(s, "privateKeyPath", "ssh.privateKeyPath", "") or ""
    state_dir = r.string(s, "stateDir", "ssh.stateDir", d.state_dir, ABS_PATH_RE, "an absolute path")
    if not key_path:
        r.problems.append("ssh.privateKeyPath: missing; the ssh backend needs the private key "
                          "Pulumi connects with")
    return SshSpec(
        artifact_dir=artifact_dir,
        private_key_path=key_path,
        state_dir=state_dir or d.state_dir,
        remove_state_on_destroy=r.boolean(s, "removeStateOnDestroy", "ssh.removeStateOnDestroy",
                                          d.remove_state_on_destroy),
    )


def parse_config(raw: Mapping[str, Any], *, aws_region: str | None = None) -> FarmConfig:
    """Validate the raw ``buildkit-farm:*`` config; raise ConfigError with every problem."""
    r = _Reader()
    for k in raw:
        if k not in TOP_LEVEL_KEYS:
            r.problems.append(f"{k}: unknown key (allowed: {', '.join(TOP_LEVEL_KEYS)})")
    backend = r.choice(raw, "backend", "backend", "aws", BACKENDS)
    # With an unknown backend, skip backend-specific checks: they would only add noise.
    backend_ok = raw.get("backend", "aws") in BACKENDS
    nodes = _nodes(r, raw, backend if backend_ok else "")
    allow_open = r.boolean(raw, "allowOpenIngress", "allowOpenIngress", False)
    cidrs = _cidrs(r, raw, allow_open)
    if backend in ("aws", "kubernetes") and backend_ok and not raw.get("allowedCidrs"):
        r.problems.append(f"allowedCidrs: {raw.get('allowedCidrs', [])!r} lets no client in; list the CIDR "
                          "blocks CI connects from (e.g. [10.0.0.0/16])")
    cfg = FarmConfig(
        backend=backend,
        nodes=tuple(nodes),
        allowed_cidrs=tuple(cidrs),
        allow_open_ingress=allow_open,
        volume=_volume(r, raw),
        buildkit=_buildkit(r, raw),
        pki=_pki(r, raw),
        builder=_builder(r, raw),
        aws=_aws(r, raw, aws_region) if backend_ok and backend == "aws" else None,
        kubernetes=_kubernetes(r, raw) if backend_ok and backend == "kubernetes" else None,
        ssh=_ssh(r, raw) if backend_ok and backend == "ssh" else None,
    )
    if r.problems:
        raise ConfigError(r.problems)
    return cfg
