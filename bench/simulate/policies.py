"""Where a build goes: each policy picks one of the platform's live nodes for a repository.

A policy sees the live nodes in config order and their current loads (running plus queued
builds, what the nodes would report), and returns one node name.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from functools import cache

from components.builder.affinity import rank
from components.builder.placement import place

Policy = Callable[[str, Sequence[str], Mapping[str, int]], str]


def first_match(repo: str, live: Sequence[str], loads: Mapping[str, int]) -> str:
    """buildx with several nodes of one platform: the first in the builder's list that is up."""
    return live[0]


def random_choice(seed: int) -> Policy:
    """A load balancer in front of the nodes (the kubernetes driver's default `random` mode)."""
    rng = random.Random(f"policy:{seed}")

    def pick(repo: str, live: Sequence[str], loads: Mapping[str, int]) -> str:
        return live[rng.randrange(len(live))]
    return pick


def _ring_position(s: str) -> tuple[int, int]:
    # serialx/hashring's order, as buildx keeps it: an MD5 digest read as two signed little-endian int64s
    d = hashlib.md5(s.encode()).digest()
    return (int.from_bytes(d[:8], "little", signed=True), int.from_bytes(d[8:], "little", signed=True))


@cache
def _ring(live: tuple[str, ...]) -> list[tuple[tuple[int, int], str]]:
    return sorted((_ring_position(f"{n}-0"), n) for n in live)


def sticky_ring(repo: str, live: Sequence[str], loads: Mapping[str, int]) -> str:
    """The kubernetes driver's `loadbalance=sticky`: a hash ring with one position per running pod
    (MD5 of "<pod>-0"); the key goes to the first position strictly after its own hash, wrapping
    (docker/buildx driver/kubernetes/podchooser). The key here is the repository (buildx hashes the
    build context path, one per repository)."""
    ring = _ring(tuple(live))
    key = _ring_position(repo)
    return next((n for pos, n in ring if pos > key), ring[0][1])


def rendezvous(repo: str, live: Sequence[str], loads: Mapping[str, int]) -> str:
    """Today's create script: the key's first node in rendezvous order that is up."""
    return rank(repo, live)[0]


def bounded(c: float) -> Policy:
    """Consistent hashing with bounded loads over the rendezvous order (components.builder.placement)."""
    def pick(repo: str, live: Sequence[str], loads: Mapping[str, int]) -> str:
        return place(repo, live, loads, c)[0]
    return pick


def bounded_with_slots(c: float, slots: int) -> Policy:
    """Bounded loads with the node's slots as the floor of the bound (`place(..., min_bound=slots)`):
    a key leaves its warm node only when that node runs more than c x the average AND has no free slot."""
    def pick(repo: str, live: Sequence[str], loads: Mapping[str, int]) -> str:
        return place(repo, live, loads, c, min_bound=slots)[0]
    return pick


def least_loaded(repo: str, live: Sequence[str], loads: Mapping[str, int]) -> str:
    """No key: placement's least-loaded order (ties by name), the cache-blind balance extreme."""
    return place(None, live, loads)[0]


def all_policies(seed: int, slots: int) -> dict[str, Policy]:
    """The sweep's policies, by the name the table shows."""
    return {
        "first-match": first_match,
        "random": random_choice(seed),
        "sticky-ring": sticky_ring,
        "rendezvous": rendezvous,
        "bounded c=1.1": bounded(1.1),
        "bounded c=1.25": bounded(1.25),
        "bounded c=2": bounded(2.0),
        "bounded c=1.25 +slots": bounded_with_slots(1.25, slots),
        "least-loaded": least_loaded,
    }


#: the bound each bounded policy keeps, for the check that placement respected it
BOUNDED_C = {"bounded c=1.1": 1.1, "bounded c=1.25": 1.25, "bounded c=2": 2.0}
