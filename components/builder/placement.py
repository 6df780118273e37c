"""Where a build goes among a platform's nodes, given their live load: consistent hashing with
bounded loads (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded Loads",
SODA 2018 / arXiv:1608.01350, 2016) over the rendezvous order of `components.builder.affinity`. Pure.

Definition. For n nodes whose current loads (running builds) sum to L, the bound for the
incoming build is

    bound = ceil(c * (L + 1) / n)        (c > 1; the incoming build is counted, as in the paper)

A node is *full* when its load is at or above the bound (one more build would exceed it). A key's
try-order is its rendezvous order (`affinity.rank`) with the full nodes moved, in their
rendezvous order, behind the others: the build goes to its first node that is not full, and the
full ones stay in the list so failover still has every node to try.

Guarantee. Some node is never full (if all n were, the loads would sum to at least
n * bound >= c * (L + 1) > L), so the first node of the order takes the build and its load after
placement is at most the bound: no node runs more than about c times the platform's average.
While a key's first node is under the bound the order is exactly `affinity.rank` (the build stays
on its warm node), so with equal loads (or none) joining and leaving nodes move only the keys
they win or lose, as plain rendezvous does.

A floor (`min_bound`, default 0: the paper's bound) raises the bound to max(min_bound, bound):
with few builds per node, ceil(c x average) is 1 or 2 and the plain bound sends a key's second
concurrent build to a cold node while its warm one has idle slots; a floor of the node's build
slots keeps the key home until it is both over c x the average and out of slots. The guarantee
becomes: load after placement <= max(min_bound, bound). (docs/simulation/ measures both.)

Without a key (None, or empty as in the create script's `-z "$key"`) there is no warm node to
prefer: least-loaded first, ties by node name so equal inputs give equal orders.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from fractions import Fraction

from components.builder.affinity import rank

DEFAULT_C = 1.25


def bound(total_load: int, n: int, c: float = DEFAULT_C) -> int:
    """ceil(c * (total_load + 1) / n): the most builds a node may run once the incoming one is placed."""
    _check_c(c)
    if n < 1:
        raise ValueError(f"bound needs at least one node, got n={n}")
    if total_load < 0:
        raise ValueError(f"total load must be >= 0, got {total_load}")
    # c as the decimal it prints as (1.1 is exactly 11/10): a float product such as 1.1 * 50 / 55
    # is 1.0000000000000002 and would round the bound up by a whole build; exact fractions also
    # let a shell twin compute the same bound with integer arithmetic
    return math.ceil(Fraction(repr(c)) * (total_load + 1) / n)


def place(key: str | None, nodes: Sequence[str], loads: Mapping[str, int],
          c: float = DEFAULT_C, *, min_bound: int = 0) -> list[str]:
    """The nodes in the order to try them for one build of `key` (every node exactly once).

    `loads` maps node name -> running builds; a node it omits counts as idle, and entries for
    names not in `nodes` (another platform's) are ignored. See the module docstring for the
    bound and what it guarantees.
    """
    _check_c(c)
    if isinstance(min_bound, bool) or not isinstance(min_bound, int) or min_bound < 0:
        raise ValueError(f"min_bound must be a whole number >= 0, got {min_bound!r}")
    if not nodes:
        raise ValueError("place needs at least one node")
    dupes = sorted(n for n, k in Counter(nodes).items() if k > 1)
    if dupes:
        raise ValueError(f"node names must be unique, repeated: {', '.join(dupes)}")
    load = {n: loads.get(n, 0) for n in nodes}
    bad = {n: v for n, v in load.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0}
    if bad:
        raise ValueError(f"loads must be whole numbers >= 0, got {bad}")
    if not key:
        return sorted(nodes, key=lambda n: (load[n], n))
    cap = max(min_bound, bound(sum(load.values()), len(nodes), c))
    order = rank(key, nodes)
    return [n for n in order if load[n] < cap] + [n for n in order if load[n] >= cap]


def _check_c(c: float) -> None:
    # c == 1 leaves no slack (every node may have to be exactly at the average) and the paper's
    # movement bounds need c = 1 + eps with eps > 0; nan and inf would make every node under the bound
    if isinstance(c, bool) or not isinstance(c, int | float) or not math.isfinite(c) or c <= 1:
        raise ValueError(f"c must be a finite number > 1 (the load bound is c x the average), got {c!r}")
