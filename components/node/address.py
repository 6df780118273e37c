"""What clients dial: one node's address, known before its certificate is minted."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi


def split_sans(hosts: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split host names and IP literals into (dns_names, ip_addresses), de-duplicated, in order."""
    dns: list[str] = []
    ips: list[str] = []
    for h in hosts:
        if not h:
            continue
        try:
            ip = str(ipaddress.ip_address(h))
        except ValueError:
            if h not in dns:
                dns.append(h)
        else:
            if ip not in ips:
                ips.append(ip)
    return dns, ips


@dataclass(frozen=True)
class NodeAddress:
    """A node's identity on the network, independent of its backend."""

    name: str
    platform: str
    port: int
    #: the host clients connect to (and the TLS server name)
    host: pulumi.Output[str]
    #: every name and address in the server cert (the host first)
    sans: pulumi.Output[list[str]]

    @property
    def endpoint(self) -> pulumi.Output[str]:
        return pulumi.Output.format("tcp://{0}:{1}", self.host, self.port)

    @property
    def dns_names(self) -> pulumi.Output[list[str]]:
        return self.sans.apply(lambda s: split_sans(s)[0])

    @property
    def ip_addresses(self) -> pulumi.Output[list[str]]:
        return self.sans.apply(lambda s: split_sans(s)[1])


def static_address(name: str, platform: str, port: int, host: str,
                   extra_sans: Sequence[str] = ()) -> NodeAddress:
    """An address fixed in config (SSH hosts)."""
    return NodeAddress(name=name, platform=platform, port=port, host=pulumi.Output.from_input(host),
                       sans=pulumi.Output.from_input([host, *extra_sans]))
