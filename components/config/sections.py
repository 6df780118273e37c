"""Config sections shared by every backend: volume, buildkit, pki, builder, idleStop, metrics, otel."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, model_validator

from components import versions
from components.builder.scripts import DEFAULT_PROBE_TIMEOUT
from components.config.base import ConfigModel, Problem, problems
from components.config.fields import Bool, Int, allows, digits, integer, matching, problem
from components.platforms import Arch, Platform

SemverTag = Annotated[str, matching(r"^v\d+\.\d+\.\d+$", "a release tag like v0.32.2")]
Sha256 = Annotated[str, matching(r"^[0-9a-f]{64}$", "a 64-digit lower-case hex sha256")]


class VolumeSpec(ConfigModel):
    """The build-state volume of every node (EBS volume, PVC or the host's data device)."""

    size_gb: Annotated[Int, integer(20, 16384, " GiB")] = Field(
        100, description="cache volume size; buildkitd's GC limits derive from it")
    iops: Annotated[Int, integer(3000, 16000)] = Field(3000, description="aws: gp3 IOPS")
    throughput_mbps: Annotated[Int, integer(125, 1000, " MiB/s")] = Field(125, description="aws: gp3 throughput")
    protect: Bool = Field(
        True, description="Pulumi `protect` on the cache volume (aws) or the namespace holding the PVCs (kubernetes)")


class Sha256Pins(ConfigModel):
    amd64: Sha256 | None = Field(None, description="sha256 of the linux-amd64 release tarball")
    arm64: Sha256 | None = Field(None, description="sha256 of the linux-arm64 release tarball")


def _pins_for_the_version(given: Sha256Pins, info: ValidationInfo) -> Sha256Pins:
    """Both checksums: the built-in pins for the built-in version, else both must be given."""
    version = info.data.get("version")
    pins = {a: d for a, d in (("amd64", given.amd64), ("arm64", given.arm64)) if d}
    if version == versions.BUILDKIT_VERSION:
        pins = {**versions.BUILDKIT_SHA256, **pins}
    elif version is not None and set(pins) != {"amd64", "arm64"}:
        raise problem(f"{pins!r} must give amd64 and arm64 checksums when "
                      f"buildkit.version ({version}) differs from the built-in pin")
    return Sha256Pins(**pins)


class BuildkitSpec(ConfigModel):
    """What every node runs."""

    version: SemverTag = Field(versions.BUILDKIT_VERSION, description="BuildKit release installed on hosts")
    sha256: Annotated[Sha256Pins, AfterValidator(_pins_for_the_version)] = Field(
        Sha256Pins(), validate_default=True, description="release tarball checksums; built-in for the default "
        "version, both required for any other")
    image: Annotated[str, matching(r"^[a-z0-9][a-z0-9._/:-]*:[A-Za-z0-9._-]+@sha256:[0-9a-f]{64}$",
                                   "an image pinned by tag and digest (name:tag@sha256:<64 hex>)")] = Field(
        versions.BUILDKIT_ROOTLESS_IMAGE, description="kubernetes: the rootless image, pinned by tag and digest")
    port: Annotated[Int, integer(1, 65535)] = Field(1234, description="the gRPC port clients dial (mTLS)")
    history_max_entries: Annotated[Int, integer(1, 100000)] = Field(200, description="build records kept")
    history_max_age_days: Annotated[Int, integer(1, 3650)] = Field(14, description="build records' maximum age")
    drain_timeout_seconds: Annotated[Int, integer(0, 3600)] = Field(
        600, description="how long a restart (cert rotation, config change) or stop waits for builds in flight "
        "before buildkitd stops (kubernetes: a stopping pod, before buildkitd gets SIGTERM)")

    def sha256_of(self, arch: Arch) -> str:
        digest = self.sha256.amd64 if arch == "amd64" else self.sha256.arm64
        assert digest is not None  # filled by the validator
        return digest


ClientName = Annotated[str, matching(r"^[a-z][a-z0-9-]{0,62}$", "a client name (lower-case letters, digits, '-')")]


class PkiSpec(ConfigModel):
    """The farm's private CA and the certificates it issues."""

    algorithm: Literal["ECDSA", "RSA"] = Field("ECDSA", description="key algorithm of every key")
    # P224 (the provider's default) breaks Go TLS, so it is not offered.
    ecdsa_curve: Literal["P256", "P384"] = Field("P256", description="ECDSA curve")
    rsa_bits: Annotated[Literal[2048, 3072, 4096], BeforeValidator(digits)] = Field(
        3072, description="RSA key size")
    validity_hours: Annotated[Int, integer(24, 24 * 3650)] = Field(24 * 365, description="leaf certificate lifetime")
    early_renewal_hours: Annotated[Int, integer(0, 24 * 3650)] = Field(
        24 * 30, description="a `pulumi up` this close to a leaf's expiry renews it; shorter than validityHours")
    ca_validity_hours: Annotated[Int, integer(24, 24 * 3650 * 3)] = Field(
        24 * 365 * 5, description="CA lifetime (renewed one leaf lifetime before it ends)")
    clients: tuple[ClientName, ...] = Field(
        ("ci",), description="one client certificate per consumer; the first is the builder's")

    @model_validator(mode="after")
    def _lifetimes_and_clients(self) -> Self:
        found: list[Problem] = []
        if self.early_renewal_hours >= self.validity_hours:
            found.append((("earlyRenewalHours",),
                          f"{self.early_renewal_hours!r} is not shorter than pki.validityHours "
                          f"({self.validity_hours}); certificates would be renewed on every `pulumi up` "
                          "(allowed: 0 <= earlyRenewalHours < validityHours)"))
        # The CA renews itself one leaf lifetime before it ends (so it can still sign a full leaf):
        # a CA that does not live two leaf lifetimes is due for renewal within the first one, and
        # every `pulumi up` would replace it and every certificate under it.
        if self.ca_validity_hours < 2 * self.validity_hours:
            due = max(0, self.ca_validity_hours - self.validity_hours)
            found.append((("caValidityHours",),
                          f"{self.ca_validity_hours!r} would renew the CA {due} h after it is made, within one "
                          f"leaf lifetime (pki.validityHours {self.validity_hours}), "
                          "so `pulumi up` would keep replacing the CA and every certificate under it "
                          f"(allowed: at least 2 x validityHours = {2 * self.validity_hours})"))
        if not self.clients:
            found.append((("clients",), "[] has no client; give at least one (e.g. [ci])"))
        found += [(("clients", i), f"{c!r} is a duplicate") for i, c in enumerate(self.clients)
                  if c in self.clients[:i]]
        if found:
            raise problems(found)
        return self


def _load_bound(value: Any) -> Any:
    # at most 3 decimals and at most 100: the create script computes the bound with c as an exact
    # fraction in 64-bit integers (components/builder/spread.py); c <= 1 leaves no room over the average
    try:
        d = Decimal(value if isinstance(value, str) else repr(value)).normalize()
    except (InvalidOperation, TypeError):
        raise ValueError(value) from None
    exponent = d.as_tuple().exponent
    if isinstance(value, bool) or not isinstance(exponent, int) or exponent < -3 or not 1 < d <= 100:
        raise ValueError(value)
    return float(d)


LoadBound = Annotated[float, BeforeValidator(_load_bound),
                      allows("a number greater than 1 and at most 100, with at most 3 decimals")]


class BuilderSpec(ConfigModel):
    """The buildx builder made on the machine that runs `pulumi up`."""

    enabled: Bool = Field(True, description="create the builder (off: CI runs the exported buildxCreateScript itself)")
    name: Annotated[str, matching(r"^([a-zA-Z][a-zA-Z0-9.\-_]*)?$",
                                  "a buildx builder name ([a-zA-Z][a-zA-Z0-9.-_]*)")] = Field(
        "", description="builder name; empty: `bkf-<stack>`")
    buildx: Annotated[str, matching(r"^[A-Za-z0-9_./ -]+$", "a command like 'docker buildx'")] = Field(
        "docker buildx", description="how to run buildx (`docker-buildx` works standalone)")
    config_dir: Annotated[str, matching(r"^(/[^\0]*)?$", "an absolute path")] = Field(
        "", description="absolute BUILDX_CONFIG for the builder and its cert files; empty: the caller's "
        "$BUILDX_CONFIG or ~/.docker/buildx")
    ready_timeout_seconds: Annotated[Int, integer(0, 3600, " seconds")] | None = Field(
        None, description="how long the builder's preflight waits for booting nodes (0: one probe); empty: 900 on "
        "aws (cloud-init installs BuildKit on a fresh instance), 0 on ssh and kubernetes (their nodes are up "
        "when `up` reaches the builder)")
    load_bound: LoadBound = Field(
        1.25, description="spare nodes: c of the bounded-load placement; a key's build leaves its own node while "
        "that node runs at least ceil(c x (the platform's running builds + 1) / its nodes) builds")
    probe_timeout_seconds: Annotated[Int, integer(1, 600, " seconds")] = Field(
        DEFAULT_PROBE_TIMEOUT, description="how long one probe of one node may take in the builder's preflight: a "
        "node that drops packets (a security group change, a partition) costs this once, not buildx's own timeouts "
        "(about a minute), before the key's next node is tried; `$BKF_PROBE_TIMEOUT` overrides it at run time")
    emulate: tuple[Platform, ...] = Field(
        (), description="platforms that may build under emulation (QEMU) on a node of another platform when none "
        "of their own nodes passes the builder's preflight (the script says so); empty: such a platform stops the "
        "script naming it and the nodes tried. `$BKF_EMULATE` (space-separated) overrides it at run time")

    @model_validator(mode="after")
    def _emulate_once(self) -> Self:
        found: list[Problem] = [(("emulate", i), f"{p!r} is a duplicate") for i, p in enumerate(self.emulate)
                                if p in self.emulate[:i]]
        if found:
            raise problems(found)
        return self


class IdleStopSpec(ConfigModel):
    """Stop an idle node and let CI wake it (aws; ssh with an explicit command; kubernetes: the StatefulSet
    scales to 0). Off by default."""

    after_minutes: Annotated[Int, integer(0, 1440, " minutes (0: off)")] = Field(
        0, description="stop a node after this many minutes with no build running or finished "
        "(read from the daemon's own history); 0: never")
    check_seconds: Annotated[Int, integer(5, 3600, " seconds")] = Field(
        60, description="how often the node's timer reads the daemon's history")
    command: Annotated[str, matching(r"^[A-Za-z0-9_./ =:-]*$", "a command like 'systemctl poweroff'")] = Field(
        "", description="what stops the node; empty: `systemctl poweroff` (aws: the instance stops, its "
        "cache volume and address stay); required with backend ssh; kubernetes: empty (the node's StatefulSet "
        "scales to 0, its PVC stays)")

    @property
    def enabled(self) -> bool:
        return self.after_minutes > 0


class MetricsSpec(ConfigModel):
    """Prometheus metrics on every node, behind mutual TLS (clients hold a cert from the farm's CA)."""

    port: Annotated[Int, integer(0, 65535, " (0: off)")] = Field(
        0, description="the port each node serves /metrics on (buildkitd's series and the farm's), to clients "
        "with a certificate from the farm's CA; opened only to allowedCidrs. 0: off (no debug socket either)")

    @property
    def enabled(self) -> bool:
        return self.port > 0


#: an HTTP header name (RFC 9110 token); over grpc it is sent as metadata, lower-cased
OTLP_HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$"
#: the longest header value accepted (an API key or a bearer token fits many times over)
OTLP_HEADER_VALUE_MAX = 2048


def _header_value(value: Any) -> Any:
    """A header value is a secret (an API key): a problem says what is wrong, never shows the value."""
    if not isinstance(value, str):
        raise problem("is not a string (the value is not shown: header values are secret)")
    if not value or value != value.strip():
        raise problem("is empty or starts or ends with a space (the value is not shown: header values are secret)")
    if len(value) > OTLP_HEADER_VALUE_MAX:
        raise problem(f"is {len(value)} characters long, more than {OTLP_HEADER_VALUE_MAX} (the value is not "
                      "shown: header values are secret)")
    if any(not " " <= c <= "~" for c in value):
        raise problem("holds a character other than printable ASCII (a line break, a control or a non-ASCII "
                      "character; the value is not shown: header values are secret)")
    return value


OtlpHeaderName = Annotated[str, matching(OTLP_HEADER_NAME, "an HTTP header name like x-api-key")]
OtlpHeaderValue = Annotated[str, BeforeValidator(_header_value), allows(
    "printable ASCII, 1 to 2048 characters, no leading or trailing space")]


class OtelSpec(ConfigModel):
    """Build traces from every node to an OpenTelemetry collector (buildkitd's own OTLP exporter)."""

    endpoint: Annotated[str, matching(r"^(https?://[A-Za-z0-9.:\[\]-]+(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?)?$",
                                      "an OTLP endpoint URL like http://otel-collector:4317 (empty: off)")] = Field(
        "", description="where every node's buildkitd sends its traces and metrics over OTLP "
        "(OTEL_EXPORTER_OTLP_ENDPOINT; http:// is plaintext, https:// TLS); empty: off")
    protocol: Literal["grpc", "http/protobuf"] = Field(
        "grpc", description="OTLP transport (OTEL_EXPORTER_OTLP_PROTOCOL): grpc (port 4317) or http/protobuf (4318)")
    headers: dict[OtlpHeaderName, OtlpHeaderValue] = Field(
        {}, repr=False, description="headers on every OTLP request (OTEL_EXPORTER_OTLP_HEADERS), e.g. an API key: "
        "set them with `pulumi config set --secret --path 'otel.headers.x-api-key' ...`; they reach the node "
        "the way its TLS key does (ssh: stdin, aws: an SSM SecureString, kubernetes: its Secret), never the "
        "command line, the user data or plain state")

    @model_validator(mode="after")
    def _headers_need_an_endpoint(self) -> Self:
        if self.headers and not self.endpoint:
            raise problems([(("headers",), "are set but otel.endpoint is empty: give the endpoint they are for "
                                           "(or remove otel.headers)")])
        lower = [n.lower() for n in self.headers]
        dups = sorted({n for n in self.headers if lower.count(n.lower()) > 1})
        if dups:
            raise problems([(("headers", n), "is given twice (header names are case-insensitive)") for n in dups])
        return self
