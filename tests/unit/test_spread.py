"""Bounded loads in the create script: the rendered bash `place` IS `placement.place` (hypothesis runs
both on the same generated keys, loads and c), and the script reads each node's running builds from
its history (a stand-in buildctl here; tests/e2e/test_scale.py on real daemons)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.builder.affinity import rank
from components.builder.placement import bound, place
from components.builder.scripts import render_create_script
from components.builder.spread import c_fraction, render_place
from tests.unit.test_buildx import SPARE, joined, run_spare_script

AMD = ["amd64-1", "amd64-2", "amd64-3"]


def bash_place(key: str, loads: dict[str, int], c: float) -> list[str]:
    """The rendered bash function, run: the try-order it prints."""
    script = "\n".join(["set -euo pipefail", *render_place(c), 'place "$@"'])
    r = subprocess.run(["bash", "-c", script, "place", key, *(f"{n}={v}" for n, v in loads.items())],
                       capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"})
    return r.stdout.splitlines()


# -- the twin ------------------------------------------------------------------------------------------

def test_c_is_the_exact_decimal() -> None:
    assert c_fraction(1.25) == (5, 4)
    assert c_fraction(1.1) == (11, 10)
    assert c_fraction(2) == (2, 1)
    with pytest.raises(ValueError, match="c must be a finite number > 1"):
        c_fraction(1.0)


def test_bash_place_worked_examples() -> None:
    # the hand-worked examples of tests/unit/test_placement.py, through bash
    assert bash_place("acme/api", dict.fromkeys(AMD, 0), 1.25) == ["amd64-3", "amd64-1", "amd64-2"]
    assert bash_place("acme/api", {"amd64-1": 0, "amd64-2": 0, "amd64-3": 3}, 1.25) == [
        "amd64-1", "amd64-2", "amd64-3"]
    assert bash_place("acme/api", {"amd64-1": 0, "amd64-2": 0, "amd64-3": 1}, 2) == [
        "amd64-3", "amd64-1", "amd64-2"]
    assert bash_place("", {"amd64-1": 2, "amd64-2": 0, "amd64-3": 0}, 1.25) == ["amd64-2", "amd64-3", "amd64-1"]
    # 1.1 * 50 / 55 is 1.0000000000000002 in floats: the bound is 1 in both
    loads = {f"n{i:02d}": 1 if i < 49 else 0 for i in range(55)}
    assert bash_place("k", loads, 1.1) == place("k", list(loads), loads, 1.1)


NAMES = st.lists(st.from_regex(r"[a-z0-9][a-z0-9-]{0,11}", fullmatch=True), min_size=1, max_size=8, unique=True)
# any text bash can pass as an argument (no NUL), the empty key (least-loaded first) included
KEYS = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=30)
# c with up to 3 decimals from 1.001 to 100: what builder.loadBound allows
CS = st.integers(1001, 100_000).map(lambda m: m / 1000) | st.sampled_from([1.25, 1.1, 1.5, 2.0])


@st.composite
def farms(draw: st.DrawFn, c: float) -> dict[str, int]:
    """Loads with, most of the time, one node exactly at the bound or one build off it: the only
    place where the bound's rounding decides the order (random loads almost never hit it)."""
    loads = {n: draw(st.integers(0, 6) | st.integers(0, 500)) for n in draw(NAMES)}
    if len(loads) > 1 and draw(st.integers(0, 3)):
        edge, off = draw(st.sampled_from(sorted(loads))), draw(st.sampled_from([0, 0, -1, 1]))
        rest = sum(loads.values()) - loads[edge]
        # a load x with x == bound(rest + x) + off, where one exists (the bound grows slower than x for c < n)
        loads[edge] = next((x for x in range(0, 3000) if x == bound(rest + x, len(loads), c) + off), loads[edge])
    return loads


@settings(max_examples=300, deadline=None)
@given(KEYS, CS.flatmap(lambda c: st.tuples(st.just(c), farms(c))))
def test_prop_bash_place_equals_python_place(key: str, case: tuple[float, dict[str, int]]) -> None:
    c, loads = case
    assert bash_place(key, loads, c) == place(key or None, list(loads), loads, c)


# -- the script: loads read from the nodes --------------------------------------------------------------

def fake_buildctl(tmp_path: Path, loads: dict[str, str]) -> str:
    """A buildctl whose `debug histories` prints N running records (plus a finished one) per
    endpoint, fails for "down" and answers nothing for "silent"; returns a PATH with it first."""
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    cases = "\n".join(f"  {ep}) n={v};;" for ep, v in loads.items())
    (d / "buildctl").write_text(f"""#!/bin/bash
echo "$@" >> "$BX_LOG.buildctl"
while [ $# -gt 0 ]; do [ "$1" = --addr ] && addr=$2; shift; done
n=0
case ${{addr:-}} in
{cases}
esac
if [ "$n" = down ]; then echo 'error: connection refused' >&2; exit 1; fi
if [ "$n" = silent ]; then exec sleep 30; fi
echo done
for _ in $(seq "$n"); do echo running; done
""")
    (d / "buildctl").chmod(0o755)
    return f"{d}:/usr/bin:/bin"


EP = {n.name: n.endpoint for n in SPARE}


def test_a_full_owner_sends_the_key_to_the_next_node_and_says_why(tmp_path: Path) -> None:
    order = rank("acme/api", AMD)  # the owner, then the rest
    # loads 2, 0, 0: L=2, n=3, bound ceil(1.25 * 3 / 3) = 2: the owner is full
    path = fake_buildctl(tmp_path, {EP[order[0]]: "2"})
    r, log = run_spare_script(tmp_path, "--key", "acme/api", path=path)
    assert r.returncode == 0, r.stderr
    assert joined(log) == [order[1], "arm64-1"]
    assert f"affinity: key acme/api orders linux/amd64 as {order[1]} {order[2]} {order[0]}" in r.stdout
    assert f"{order[0]}=2" in r.stdout and "load: running builds" in r.stdout
    # arm64-1 is alone on its platform: its load is never asked for
    assert "10.0.0.2" not in (tmp_path / "log.buildctl").read_text()
    # one running build: full at c=1.25 (bound ceil(1.25 * 2 / 3) = 1), at home with c=2 (ceil(4 / 3) = 2)
    path = fake_buildctl(tmp_path, {EP[order[0]]: "1"})
    r, log = run_spare_script(tmp_path, "--key", "acme/api", path=path, load_bound=2)
    assert joined(log) == [order[0], "arm64-1"], r.stdout


def test_an_unreadable_load_counts_as_0_and_the_script_says_so(tmp_path: Path) -> None:
    order = rank("acme/api", AMD)
    path = fake_buildctl(tmp_path, {EP[order[0]]: "down"})
    r, log = run_spare_script(tmp_path, "--key", "acme/api", path=path)
    assert r.returncode == 0, r.stderr
    assert joined(log) == [order[0], "arm64-1"]
    assert f"load: cannot read the running builds of {order[0]} (error: connection refused): counts as 0" in r.stdout
    # no buildctl at all: plain rendezvous, said once
    r, log = run_spare_script(tmp_path, "--key", "acme/api", path="/usr/bin:/bin")
    assert joined(log) == [order[0], "arm64-1"]
    assert "load: no buildctl on PATH: every node's load counts as 0 (plain rendezvous order)" in r.stdout


def test_a_node_silent_to_the_load_read_costs_the_bound_once_not_twice(tmp_path: Path) -> None:
    """The load read and the probe have the same bound: a node that let it pass in silence while its
    load was read is not probed again (the probe would wait for the same silence), and the script
    says it timed out, naming the bound; the key goes to its next node."""
    order = rank("acme/api", AMD)
    path = fake_buildctl(tmp_path, {EP[order[0]]: "silent"})
    r, log = run_spare_script(tmp_path, "--key", "acme/api", path=path, BKF_PROBE_TIMEOUT="2")
    assert r.returncode == 0, r.stderr
    assert joined(log) == [order[1], "arm64-1"]
    assert f"probe of node {order[0]} ({EP[order[0]]}) timed out after 2s (the bound:" in r.stderr, r.stderr
    assert f"affinity: skipping {order[0]}" in r.stderr
    assert not [x for x in log if x.startswith(f"create --name probe-{order[0]} ")], log


def test_without_a_key_each_platforms_least_loaded_node_comes_first(tmp_path: Path) -> None:
    path = fake_buildctl(tmp_path, {EP["amd64-1"]: "3", EP["amd64-2"]: "1"})
    r, log = run_spare_script(tmp_path, path=path)
    assert r.returncode == 0, r.stderr
    # amd64's places in config order (1st, 3rd, 4th) go least-loaded first; arm64-1 keeps its place
    assert joined(log) == ["amd64-3", "arm64-1", "amd64-2", "amd64-1"]
    assert "spread: no key: linux/amd64 least-loaded first: amd64-3 amd64-2 amd64-1" in r.stdout


def test_a_farm_without_spares_renders_no_load_reading() -> None:
    one_each = [SPARE[0], SPARE[1]]
    script = render_create_script("bkf", one_each)
    assert "read_loads" not in script and "place" not in script
    # and the bound is rendered from builder.loadBound
    assert "c = 3/2" in render_create_script("bkf", SPARE, load_bound=1.5)
