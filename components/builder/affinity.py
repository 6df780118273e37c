"""Cache-affine node order: rendezvous (highest-random-weight) hashing, pure.

Every (key, node) pair gets a weight; a key's order over a platform's nodes is by
weight, highest first. The same key always yields the same order (its build cache
stays warm on one node), removing a node moves only the keys whose first choice it
was, and adding one moves only the keys it now wins. The create script computes
the same weight in bash (`sha256sum`), so the Python function is the reference
the unit tests hold the script to.

weight(key, node) = the first 64 bits of sha256(key + NUL + node name), big-endian;
ties (never seen in practice) go to the lower node name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

#: hex digits of the digest that make the weight (the script cuts the same)
WEIGHT_HEX = 16

N = TypeVar("N")


def weight(key: str, node: str) -> int:
    digest = hashlib.sha256(key.encode() + b"\0" + node.encode()).hexdigest()
    return int(digest[:WEIGHT_HEX], 16)


def rank(key: str, nodes: Sequence[str]) -> list[str]:
    """The node names in the key's order: the first is where its builds go while it is up."""
    return sorted(nodes, key=lambda n: (-weight(key, n), n))


def order_by_platform(key: str, nodes: Sequence[N], name: str = "name",
                      platform: str = "platform") -> dict[str, list[N]]:
    """Each platform (in first-seen order) -> its nodes in the key's order."""
    groups: dict[str, list[N]] = {}
    for n in nodes:
        groups.setdefault(getattr(n, platform), []).append(n)
    out: dict[str, list[N]] = {}
    for p, ns in groups.items():
        by_name = {getattr(n, name): n for n in ns}
        out[p] = [by_name[x] for x in rank(key, list(by_name))]
    return out
