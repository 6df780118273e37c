"""Registry settings every node gets (`registries:`, keyed by registry host).

Rendered into each node's buildkitd.toml as ``[registry."<host>"]`` (mirrors, plain HTTP, CA
files): see components/node/buildkitd_toml.py. Plain HTTP is an explicit per-host opt-in, and only
for a loopback or private IP address: anywhere else images and registry credentials (buildx
forwards the client's) would cross networks unencrypted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import Field

from components.config.base import ConfigModel, Problem, beside
from components.config.fields import Bool, PemCertificates, RegistryHost, registry_host_ip

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
