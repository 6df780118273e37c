"""Consequences of ingress changes: who may reach the build port, before and after."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from review.consequences.context import Context
from review.policy import resources


def ingress_lines(ctx: Context) -> list[str]:
    lines = []
    node_gone_or_new = {c.urn for c in ctx.p.changes if c.type in resources.NODE_TYPES and c.op in ("create", "delete")}
    for c in ctx.changed():
        if c.parent in node_gone_or_new or c.urn in ctx.explained:
            continue
        sources = None
        if c.type == resources.SECURITY_GROUP:
            sources = (_sg_sources(c.old), _sg_sources(c.new))
        elif c.type == resources.K8S_NETWORK_POLICY:
            sources = (_np_sources(c.old), _np_sources(c.new))
        elif c.type in (resources.SECURITY_GROUP_RULE, resources.SG_INGRESS_RULE):
            sources = ([], [])
        elif c.type == resources.K8S_SERVICE and "spec" in c.diffs:
            a = (c.old.get("spec") or {}).get("loadBalancerSourceRanges")
            b = (c.new.get("spec") or {}).get("loadBalancerSourceRanges")
            if a == b:
                continue
            sources = (list(a or []), list(b or []))
        if sources is None:
            continue
        change = (f": who may reach the build port: {', '.join(sources[0]) or 'nobody'} -> "
                  f"{', '.join(sources[1]) or 'nobody'}") if sources != ([], []) and sources[0] != sources[1] else ""
        lines.append(f"ingress changed ({c.short_type} {c.name}, {c.op}){change}")
        ctx.explained.add(c.urn)
    return lines


def _sg_sources(inputs: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for r in inputs.get("ingress") or []:
        if isinstance(r, Mapping):
            out += [str(x) for x in (r.get("cidrBlocks") or []) + (r.get("ipv6CidrBlocks") or [])]
    return out


def _np_sources(inputs: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for r in ((inputs.get("spec") or {}).get("ingress") or []):
        for peer in (r.get("from") or []) if isinstance(r, Mapping) else []:
            cidr = (peer.get("ipBlock") or {}).get("cidr") if isinstance(peer, Mapping) else None
            if cidr:
                out.append(str(cidr))
    return out
