"""Rendezvous hashing of a key over a platform's nodes (pure): stable, spread, minimal movement."""

from __future__ import annotations

from collections import Counter

from components.builder.affinity import order_by_platform, rank, weight
from components.builder.scripts import BuilderNode

KEYS = [f"org{i % 37}/repo-{i}" for i in range(1000)]


def nodes(n: int) -> list[str]:
    return [f"amd64-{i}" for i in range(1, n + 1)]


def test_stable_across_runs_and_releases() -> None:
    # pinned: a change of the hash (or its encoding) would move every repository off its warm node
    assert weight("acme/api", "amd64-1") == 0xb43545720385b9cc
    assert rank("acme/api", nodes(3)) == ["amd64-3", "amd64-1", "amd64-2"]
    assert rank("acme/web", nodes(3)) == ["amd64-1", "amd64-2", "amd64-3"]
    # the order depends on the node names, not on the order the config lists them in
    for k in KEYS[:50]:
        assert rank(k, nodes(5)) == rank(k, list(reversed(nodes(5))))


def test_spread_of_1000_keys_over_2_to_8_nodes() -> None:
    print("\nfirst choice of 1,000 keys (share of an even split: min..max)")
    for n in range(2, 9):
        firsts = Counter(rank(k, nodes(n))[0] for k in KEYS)
        counts = [firsts[x] for x in nodes(n)]
        even = len(KEYS) / n
        print(f"  {n} nodes: {counts}  ({min(counts) / even:.2f}..{max(counts) / even:.2f})")
        assert sum(counts) == len(KEYS)
        # every node gets a fair share: within 30% of an even split for 1,000 keys
        assert all(0.7 * even <= c <= 1.3 * even for c in counts), (n, counts)


def test_removing_a_node_moves_only_its_keys_and_keeps_the_rest_of_the_order() -> None:
    for n in range(2, 9):
        full = nodes(n)
        for gone in full:
            left = [x for x in full if x != gone]
            for k in KEYS[:300]:
                before, after = rank(k, full), rank(k, left)
                # failover order: the same list with the missing node taken out
                assert after == [x for x in before if x != gone]


def test_adding_a_node_moves_only_the_keys_it_wins() -> None:
    for n in range(1, 8):
        old, new = nodes(n), nodes(n + 1)
        moved = [k for k in KEYS if rank(k, old)[0] != rank(k, new)[0]]
        assert all(rank(k, new)[0] == new[-1] for k in moved)
        # and it wins about its share, not more
        assert len(moved) <= 1.3 * len(KEYS) / (n + 1), (n, len(moved))


def test_order_by_platform_keeps_platforms_apart_in_config_order() -> None:
    ns = [BuilderNode("amd64-1", "linux/amd64", "tcp://a:1", "a"),
          BuilderNode("arm64-1", "linux/arm64", "tcp://b:1", "b"),
          BuilderNode("amd64-2", "linux/amd64", "tcp://c:1", "c"),
          BuilderNode("amd64-3", "linux/amd64", "tcp://d:1", "d")]
    got = order_by_platform("acme/api", ns)
    assert list(got) == ["linux/amd64", "linux/arm64"]
    assert [n.name for n in got["linux/amd64"]] == rank("acme/api", ["amd64-1", "amd64-2", "amd64-3"])
    assert [n.name for n in got["linux/arm64"]] == ["arm64-1"]
