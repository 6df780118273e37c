"""Registry settings every node gets (`registries:`, keyed by registry host).

Rendered into each node's buildkitd.toml as ``[registry."<host>"]`` (mirrors, plain HTTP, CA
files): see components/node/buildkitd_toml.py. Plain HTTP is an explicit per-host opt-in, and only
for a loopback or private IP address: anywhere else images and registry credentials (buildx
forwards the client's) would cross networks unencrypted.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from components.config.base import ConfigModel, Problem, beside
from components.config.fields import DNS_NAME, Bool, allows, is_ip, problem

#: host[:port]: a DNS name or an IPv4 address, or an IPv6 address in brackets
_HOST_PORT = re.compile(r"(?:\[(?P<v6>[^\]]*)\]|(?P<name>[^:\[\]]*))(?::(?P<port>\d+))?")


def _host_port(value: str) -> tuple[str, int | None]:
    """'host:5000' -> ('host', 5000); '[::1]:5000' -> ('::1', 5000); a bare IPv6 needs brackets."""
    m = _HOST_PORT.fullmatch(value)
    if m is None or (m["v6"] is not None and not (is_ip(m["v6"]) and ":" in m["v6"])):
        raise ValueError(value)
    return m["v6"] or m["name"], int(m["port"]) if m["port"] else None


def registry_host_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address of a registry host like '10.0.0.5:5000', or None for a DNS name."""
    name, _ = _host_port(value)
    return ipaddress.ip_address(name) if is_ip(name) else None


def _registry_host(value: str) -> str:
    name, port = _host_port(value)
    if (port is not None and not 1 <= port <= 65535) or not (value.startswith("[") or re.match(DNS_NAME, name)
                                                             or is_ip(name)):
        raise ValueError(value)
    return value


def is_registry_host(value: str) -> bool:
    """host[:port] as a `registries` key allows it (what `bkf load --via` takes too)."""
    try:
        _registry_host(value)
    except ValueError:
        return False
    return True


RegistryHost = Annotated[str, AfterValidator(_registry_host), allows(
    "a registry host like registry.example.com or 10.0.0.5:5000 (host[:port], no scheme or path)")]

def _short(value: str) -> str:
    return repr(value[:32] + "...") if len(value) > 40 else repr(value)


def _pem_certificates(value: str) -> str:
    """One or more PEM X.509 certificates, none expired, and never a private key (a PEM is too long to quote)."""
    from cryptography import x509

    if "PRIVATE KEY" in value:
        raise problem(f"{_short(value)} holds a private key; give only the CA's certificate "
                      "(-----BEGIN CERTIFICATE-----), never a key")
    if "-----BEGIN CERTIFICATE-----" not in value:
        raise problem(f"{_short(value)} is not {PEM_ALLOWED}")
    try:
        certs = x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        raise problem(f"{_short(value)} is not valid PEM: a certificate block does not parse as X.509") from None
    now = datetime.datetime.now(datetime.UTC)
    for c in certs:
        if c.not_valid_after_utc < now:
            raise problem(f"{_short(value)} holds a certificate ({c.subject.rfc4514_string()}) that "
                          f"expired on {c.not_valid_after_utc:%Y-%m-%d}; give a valid CA certificate")
    return value.strip() + "\n"


PEM_ALLOWED = "PEM CA certificates (-----BEGIN CERTIFICATE-----), unexpired, no private key"
PemCertificates = Annotated[str, AfterValidator(_pem_certificates), allows(PEM_ALLOWED)]


HTTP_ALLOWED = ("a loopback or private IP address "
                "(127.0.0.0/8, ::1, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7)")


class RegistrySpec(ConfigModel):
    """How every node reaches one registry host."""

    mirrors: tuple[RegistryHost, ...] = Field(
        (), description="pull-through mirrors tried in order before the host itself (pulls only; "
        "give a mirror its own entry for its CA)")
    ca: PemCertificates | None = Field(
        None, description="PEM CA certificate(s) the nodes trust for this host, besides the system's")
    http: Bool = Field(False, description="plain HTTP, no TLS: only for a loopback or private IP address")


def http_allowed(host: str) -> bool:
    """Plain HTTP is refused for DNS names and public addresses."""
    try:
        ip = registry_host_ip(host)
    except ValueError:
        return True  # a bad host is reported by its own check
    if ip is None:
        return host.partition(":")[0] == "localhost"
    private = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")]
    return ip.is_loopback or any(ip in n for n in private if n.version == ip.version)


def _registry_rules(section: Any) -> Iterable[Problem]:
    """Rules between a host and its own settings (over the raw section: see ``beside``)."""
    if not isinstance(section, Mapping):
        return
    for host, spec in section.items():
        if not isinstance(spec, Mapping) or not isinstance(host, str):
            continue
        if spec.get("http") in (True, "true") and not http_allowed(host):
            yield ((host, "http"),
                   f"true is refused for {host!r}: plain HTTP sends images and the registry credentials "
                   f"unencrypted (allowed only for {HTTP_ALLOWED}; give the registry's CA in "
                   f'registries["{host}"].ca instead)')
        mirrors = spec.get("mirrors")
        mirrors = mirrors if isinstance(mirrors, list) else []
        for i, m in enumerate(mirrors):
            if m == host:
                yield ((host, "mirrors", i), f"{m!r} is the registry itself; a mirror is another host")
            elif m in mirrors[:i]:
                yield ((host, "mirrors", i), f"{m!r} is a duplicate")


Registries = Annotated[dict[RegistryHost, RegistrySpec], beside(_registry_rules)]
