"""Bounded-load placement over rendezvous order (pure): hand-checked examples, then properties (hypothesis)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.builder.affinity import rank
from components.builder.placement import bound, place

THREE = ["amd64-1", "amd64-2", "amd64-3"]  # rank("acme/api", THREE) == ["amd64-3", "amd64-1", "amd64-2"]


# -- examples, worked by hand -------------------------------------------------------------------------

def test_idle_platform_is_plain_rendezvous() -> None:
    assert place("acme/api", THREE, {}) == ["amd64-3", "amd64-1", "amd64-2"]


def test_owner_over_the_bound_goes_last_and_the_rest_keep_rendezvous_order() -> None:
    # L=3, n=3: bound = ceil(1.25 * 4 / 3) = 2; the owner runs 3 >= 2, so it is full
    assert bound(3, 3) == 2
    assert place("acme/api", THREE, {"amd64-3": 3}) == ["amd64-1", "amd64-2", "amd64-3"]


def test_owner_under_the_bound_keeps_the_build() -> None:
    # L=4: bound = ceil(1.25 * 5 / 3) = 3; the owner runs 2 < 3
    assert place("acme/api", THREE, {"amd64-3": 2, "amd64-1": 2}) == ["amd64-3", "amd64-1", "amd64-2"]


def test_c_sets_how_much_a_busy_owner_may_take() -> None:
    # one build running on the owner, two idle nodes: c=1.25 gives bound ceil(2.5/3)=1 (full),
    # c=2 gives ceil(4/3)=2 (room for the second build of the key on its warm node)
    assert place("acme/api", THREE, {"amd64-3": 1}) == ["amd64-1", "amd64-2", "amd64-3"]
    assert place("acme/api", THREE, {"amd64-3": 1}, c=2) == ["amd64-3", "amd64-1", "amd64-2"]


def test_min_bound_keeps_a_key_home_while_its_node_has_slots() -> None:
    # bound ceil(2.5 / 3) = 1 says full; a floor of 2 (slots) keeps the owner, 2 running does not
    assert place("acme/api", THREE, {"amd64-3": 1}, min_bound=2) == ["amd64-3", "amd64-1", "amd64-2"]
    assert place("acme/api", THREE, {"amd64-3": 2}, min_bound=2) == ["amd64-1", "amd64-2", "amd64-3"]
    # the floor only raises: with the owner far over c x the average it still yields
    loads = {"amd64-3": 9, "amd64-1": 1, "amd64-2": 1}  # bound ceil(1.25 * 12 / 3) = 5
    assert place("acme/api", THREE, loads, min_bound=2)[0] == "amd64-1"


def test_without_a_key_least_loaded_first_ties_by_name() -> None:
    loads = {"amd64-1": 2, "amd64-2": 0, "amd64-3": 0}
    assert place(None, THREE, loads) == ["amd64-2", "amd64-3", "amd64-1"]
    # the create script treats an empty key as none (`-z "$key"`)
    assert place("", THREE, loads) == place(None, THREE, loads)


def test_loads_of_other_platforms_nodes_are_ignored() -> None:
    assert place("acme/api", THREE, {"arm64-1": 50}) == rank("acme/api", THREE)


def test_bound_is_exact_for_decimal_c() -> None:
    # 1.1 * 50 / 55 is 1.0000000000000002 in floats; the bound is ceil(1) = 1, not 2
    assert math.ceil(1.1 * 50 / 55) == 2
    assert bound(49, 55, 1.1) == 1
    assert bound(0, 1, 1.25) == 2
    assert bound(99, 10, 2) == 20


@pytest.mark.parametrize(("args", "message"), [
    (("k", THREE, {}, 1.0), "c must be a finite number > 1"),
    (("k", THREE, {}, 0.5), "c must be a finite number > 1"),
    (("k", THREE, {}, math.nan), "c must be a finite number > 1"),
    (("k", THREE, {}, math.inf), "c must be a finite number > 1"),
    (("k", THREE, {}, True), "c must be a finite number > 1"),
    (("k", [], {}, 1.25), "at least one node"),
    (("k", ["a", "b", "a"], {}, 1.25), "repeated: a"),
    (("k", THREE, {"amd64-1": -1}, 1.25), "loads must be whole numbers >= 0"),
    (("k", THREE, {"amd64-1": 1.5}, 1.25), "loads must be whole numbers >= 0"),
])
def test_refuses_bad_input(args: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        place(*args)


@pytest.mark.parametrize("floor", [-1, 1.5, True])
def test_refuses_a_bad_min_bound(floor: object) -> None:
    with pytest.raises(ValueError, match="min_bound must be a whole number >= 0"):
        place("k", THREE, {}, min_bound=floor)  # type: ignore[arg-type]


def test_bound_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one node"):
        bound(0, 0)
    with pytest.raises(ValueError, match="total load"):
        bound(-1, 3)


# -- properties ---------------------------------------------------------------------------------------

NAMES = st.lists(st.from_regex(r"[a-z0-9][a-z0-9-]{0,11}", fullmatch=True), min_size=1, max_size=12, unique=True)
KEYS = st.text(min_size=1, max_size=30)
# c in hundredths, so the tests can work the bound out in integers: ceil(p * m / (100 * n)) = -(-p * m // (100 * n))
PERCENT = st.integers(101, 1000)


@st.composite
def farms(draw: st.DrawFn) -> tuple[list[str], dict[str, int]]:
    nodes = draw(NAMES)
    # small loads mostly: the bound is tight (a node exactly at it) far more often there
    loads = {n: draw(st.integers(0, 6) | st.integers(0, 60)) for n in nodes}
    return nodes, loads


@given(KEYS, farms(), PERCENT)
def test_prop_bound_respected(key: str, farm: tuple[list[str], dict[str, int]], percent: int) -> None:
    nodes, loads = farm
    chosen = place(key, nodes, loads, percent / 100)[0]
    # ceil(c x the average with the incoming build counted)
    assert loads[chosen] + 1 <= -(-percent * (sum(loads.values()) + 1) // (100 * len(nodes)))


@given(KEYS, farms(), PERCENT, st.integers(0, 8))
def test_prop_bound_with_a_floor_respected(key: str, farm: tuple[list[str], dict[str, int]], percent: int,
                                          floor: int) -> None:
    nodes, loads = farm
    cap = max(floor, -(-percent * (sum(loads.values()) + 1) // (100 * len(nodes))))
    got = place(key, nodes, loads, percent / 100, min_bound=floor)
    assert loads[got[0]] + 1 <= cap
    assert got[0] == next(n for n in rank(key, nodes) if loads[n] < cap)
    if floor == 0:
        assert got == place(key, nodes, loads, percent / 100)


@given(KEYS, farms(), PERCENT)
def test_prop_first_under_the_bound_in_rendezvous_order(key: str, farm: tuple[list[str], dict[str, int]],
                                                       percent: int) -> None:
    # the key keeps its warm node whenever that node has room, else the next that has
    nodes, loads = farm
    cap = -(-percent * (sum(loads.values()) + 1) // (100 * len(nodes)))
    got = place(key, nodes, loads, percent / 100)
    assert got[0] == next(n for n in rank(key, nodes) if loads[n] < cap)
    # and the full nodes follow in their rendezvous order
    assert [n for n in got if loads[n] >= cap] == [n for n in rank(key, nodes) if loads[n] >= cap]


@given(st.one_of(st.none(), KEYS), farms(), PERCENT)
def test_prop_permutation_deterministic_and_independent_of_input_order(
        key: str | None, farm: tuple[list[str], dict[str, int]], percent: int) -> None:
    nodes, loads = farm
    c = percent / 100
    got = place(key, nodes, loads, c)
    assert sorted(got) == sorted(nodes)
    assert place(key, nodes, dict(loads), c) == got
    assert place(key, list(reversed(nodes)), loads, c) == got
    assert place(key, sorted(nodes), dict(reversed(loads.items())), c) == got


@given(KEYS, NAMES)
def test_prop_zero_load_is_plain_rendezvous(key: str, nodes: list[str]) -> None:
    assert place(key, nodes, {}) == rank(key, nodes)
    assert place(key, nodes, dict.fromkeys(nodes, 0)) == rank(key, nodes)


@given(st.lists(KEYS, min_size=1, max_size=40), NAMES.filter(lambda ns: len(ns) >= 2), st.integers(0, 20),
       st.data())
def test_prop_node_leaving_moves_only_its_keys(keys: list[str], nodes: list[str], level: int,
                                                data: st.DataObject) -> None:
    gone = data.draw(st.sampled_from(nodes))
    left = [n for n in nodes if n != gone]
    for k in keys:
        before = place(k, nodes, dict.fromkeys(nodes, level))
        after = place(k, left, dict.fromkeys(left, level))
        if before[0] != gone:
            assert after[0] == before[0]
        assert after == [n for n in before if n != gone]


@given(st.lists(KEYS, min_size=1, max_size=40), NAMES, st.integers(0, 20), st.data())
def test_prop_node_joining_takes_only_keys_it_wins(keys: list[str], nodes: list[str], level: int,
                                                   data: st.DataObject) -> None:
    new = data.draw(st.from_regex(r"new-[a-z0-9]{1,8}", fullmatch=True))
    grown = [*nodes, new]
    for k in keys:
        before = place(k, nodes, dict.fromkeys(nodes, level))[0]
        after = place(k, grown, dict.fromkeys(grown, level))[0]
        assert after in (before, new)
        assert (after == new) == (rank(k, grown)[0] == new)


@given(farms())
def test_prop_without_key_least_loaded_first(farm: tuple[list[str], dict[str, int]]) -> None:
    nodes, loads = farm
    got = place(None, nodes, loads)
    assert [loads[n] for n in got] == sorted(loads.values())
    assert loads[got[0]] == min(loads.values())
