"""How much of the public internet a set of CIDRs admits (pure, stdlib only).

Open ingress is not only `/0`: `0.0.0.0/1` + `128.0.0.0/1` admit everyone just as well. So the
question is the size of the UNION of the ranges, counted in public addresses only (private and
reserved space is nobody's internet). A union is "open" when it covers more public addresses
than a /8 of IPv4 (2**24). For IPv6 the same share is taken of the global unicast space
(2000::/3): a /8 is 1/256 of IPv4, and 1/256 of 2000::/3 is a /11, so more than 2**117 addresses.

Imported by the policy pack (review.policy.ingress, its own venv: stdlib only) and by the config
validator (components.config.farm), so both refuse the same sets with the same numbers.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: IPv4 space that is not public (RFC 6890 special-purpose blocks, multicast, reserved); disjoint,
#: so their overlaps with a range add up.
NOT_PUBLIC_V4 = tuple(ipaddress.IPv4Network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4"))
#: IPv6: only global unicast is public, less the documentation prefix.
GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
NOT_PUBLIC_IN_GLOBAL_V6 = (ipaddress.IPv6Network("2001:db8::/32"),)

#: more public addresses than this is "open" (see the module docstring)
LIMIT = {4: 2**24, 6: 2**117}
LIMIT_NAME = {4: f"a /8 ({LIMIT[4]:,})", 6: "a /11 (1/256 of 2000::/3)"}


def _overlap(a: Network, b: Network) -> int:
    # Two CIDR blocks either nest or are disjoint.
    if a.version != b.version:
        return 0
    if a.subnet_of(b):  # type: ignore[arg-type]
        return a.num_addresses
    if b.subnet_of(a):  # type: ignore[arg-type]
        return b.num_addresses
    return 0


def public_addresses(net: Network) -> int:
    """How many public addresses one range holds."""
    if net.version == 4:
        return net.num_addresses - sum(_overlap(net, r) for r in NOT_PUBLIC_V4)
    in_global = _overlap(net, GLOBAL_UNICAST_V6)
    if in_global == 0:
        return 0
    scope = net if net.subnet_of(GLOBAL_UNICAST_V6) else GLOBAL_UNICAST_V6
    return in_global - sum(_overlap(scope, r) for r in NOT_PUBLIC_IN_GLOBAL_V6)


@dataclass(frozen=True)
class OpenRanges:
    """One IP version's ranges that, together, admit more than the limit of public addresses."""

    version: int
    #: the given ranges that hold public addresses, as given, in order
    ranges: tuple[str, ...]
    #: public addresses in their union
    public: int

    def describe(self) -> str:
        together = "together " if len(self.ranges) > 1 else ""
        if self.version == 4:
            amount = f"{self.public:,} public IPv4 addresses"
        else:  # counts of this size say nothing to a reader; the prefix of the same size does
            amount = f"about a /{128 - round(math.log2(self.public))} of public IPv6 space"
        return f"{', '.join(self.ranges)}: {together}{amount}, more than {LIMIT_NAME[self.version]}"


def open_ranges(cidrs: Iterable[str]) -> list[OpenRanges]:
    """Per IP version, the ranges whose union covers more public address space than the limit
    ([] when none does). Values that are not CIDRs are skipped: validating them is the caller's."""
    given: dict[int, list[tuple[str, Network]]] = {4: [], 6: []}
    for c in cidrs:
        try:
            net = ipaddress.ip_network(str(c).strip(), strict=False)
        except ValueError:
            continue
        given[net.version].append((str(c), net))
    out = []
    for version, nets in given.items():
        # one version per list, which the stubs cannot see
        union = ipaddress.collapse_addresses([n for _, n in nets])  # type: ignore[type-var]
        public = sum(public_addresses(n) for n in union)
        if public > LIMIT[version]:
            out.append(OpenRanges(version, tuple(c for c, n in nets if public_addresses(n)), public))
    return out
