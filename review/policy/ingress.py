"""Mandatory: ingress only on the build port, never from everywhere without the opt-in.

Security groups and their rules (AWS), NetworkPolicy and Service (Kubernetes); the build port
and the allowOpenIngress opt-in come from the stack config (``Settings``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from components.contracts.public_ranges import open_ranges
from review.policy.resources import (
    K8S_NETWORK_POLICY,
    K8S_SERVICE,
    SECURITY_GROUP,
    SECURITY_GROUP_RULE,
    SG_INGRESS_RULE,
    Resource,
    Settings,
    get,
)

OPT_IN = "set buildkit-farm:allowOpenIngress true to allow it explicitly"


def _open(cidr: str) -> bool:
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return False


def _allowed(s: Settings) -> str:
    build = f"{s.port} (the build port)"
    return f"{build} and {s.metrics_port} (metrics.port)" if s.metrics_port else build


def _port_range_problems(label: str, protocol: Any, lo: Any, hi: Any, s: Settings) -> list[str]:
    proto = str(protocol).lower()
    if proto not in ("tcp", "6"):
        return [f"{label}: protocol {protocol!r} is open; only TCP {s.port} (the build port) may be"]
    try:
        ports = (int(float(lo)), int(float(hi)))
    except (TypeError, ValueError):
        return [f"{label}: no port range; only TCP {s.port} may be open"]
    if ports[0] != ports[1] or ports[0] not in s.ports:
        return [f"{label}: opens TCP {ports[0]}-{ports[1]}; only {_allowed(s)} may be open"]
    return []


def _source_problems(label: str, cidrs: Sequence[Any], s: Settings) -> list[str]:
    if s.allow_open_ingress:
        return []
    wide = [str(c) for c in cidrs if _open(str(c))]
    if wide:
        return [f"{label}: admits {', '.join(wide)} (everyone); {OPT_IN}"]
    # Without a /0, ranges that together cover more than a /8 of the public internet are as open.
    return [f"{label}: admits {o.describe()}; {OPT_IN}" for o in open_ranges(str(c) for c in cidrs)]


def ingress_build_port_only(r: Resource, s: Settings) -> list[str]:
    problems: list[str] = []
    if r.type == SECURITY_GROUP:
        rules = get(r.props, "ingress") or []
        every: list[Any] = []
        source_problems: list[str] = []
        for i, rule in enumerate(rules):
            label = f"security group {r.name} ingress[{i}]"
            problems += _port_range_problems(label, get(rule, "protocol"), get(rule, "fromPort"),
                                             get(rule, "toPort"), s)
            cidrs = [*(get(rule, "cidrBlocks") or []), *(get(rule, "ipv6CidrBlocks") or [])]
            every += cidrs
            source_problems += _source_problems(label, cidrs, s)
        if len(rules) > 1 and not source_problems:
            # rules that are each narrow enough may still open the group together
            source_problems = _source_problems(f"security group {r.name} ingress (all rules)", every, s)
        problems += source_problems
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
                if proto != "TCP" or get(p, "port") not in (*s.ports, "buildkitd") or get(p, "endPort"):
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
            # the named ports are the pods' own: the build port, and metrics.port's (the sidecar) when it is on
            if target not in (*s.ports, "buildkitd", *(("metrics",) if s.metrics_port else ())):
                problems.append(f"{label}: exposes port {target}; only {_allowed(s)} may be exposed")
        if get(r.props, "spec", "type") == "LoadBalancer":
            ranges = get(r.props, "spec", "loadBalancerSourceRanges") or []
            if not ranges and not s.allow_open_ingress:
                problems.append(f"{label}: a LoadBalancer without loadBalancerSourceRanges admits everyone; {OPT_IN}")
            problems += _source_problems(label, ranges, s)
    return problems
