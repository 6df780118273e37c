"""The farm simulator (bench/simulate): calibrated from make bench's figures, seeded, conserving
builds, and placing within the bounds the policies promise."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from bench.simulate import calibration, engine, policies, report, workload
from bench.simulate.__main__ import main, sweep
from components.builder.placement import bound

CAL = calibration.load()
SMALL = workload.Workload(builds_per_node=150)


def test_calibration_is_the_median_of_the_committed_bench_samples() -> None:
    raw = json.loads(calibration.BENCH_JSON.read_text())
    cold, warm = raw["scenarios"]["s1_ephemeral_full"]["samples"], raw["scenarios"]["s3_farm_change"]["samples"]
    assert CAL.cold.median == sorted(cold)[1] and CAL.warm.median == sorted(warm)[1]
    assert CAL.cold.median / CAL.warm.median > 10  # a miss costs far more than a hit: the point of affinity
    assert 0 < CAL.cold.sigma < 1 and 0 < CAL.warm.sigma < 1


def test_calibration_refuses_a_bench_without_the_scenarios() -> None:
    with pytest.raises(ValueError, match="s3_farm_change"):
        calibration.from_bench({"scenarios": {"s1_ephemeral_full": {"samples": [1.0, 2.0]}}})


def test_workload_volume_and_zipf_skew() -> None:
    builds = workload.day(8, CAL, SMALL, seed=3)
    assert 0.8 * 8 * 150 <= len(builds) <= 1.2 * 8 * 150
    assert builds == sorted(builds, key=lambda b: (b.arrival, b.repo))
    counts = Counter(b.repo for b in builds)
    assert counts.most_common(1)[0][0] in {"repo-001", "repo-002"}
    # the work day: more builds between 09:00 and 17:00 than in the other 16 hours
    day = sum(1 for b in builds if 9 * 3600 <= b.arrival < 17 * 3600)
    assert day > len(builds) - day


def test_deterministic_for_a_seed() -> None:
    a = sweep(7, [1, 3], CAL, SMALL)
    assert a == sweep(7, [1, 3], CAL, SMALL)
    assert a != sweep(8, [1, 3], CAL, SMALL)


@pytest.mark.parametrize("name", list(policies.all_policies(1, 4)))
def test_every_arrived_build_completes_once_within_the_slots(name: str) -> None:
    builds = workload.day(4, CAL, SMALL, seed=5)
    farm = engine.Farm(4, slots=2)
    run = engine.simulate(builds, farm, policies.all_policies(5, farm.slots)[name])
    assert [o.build for o in run.outcomes] == builds
    assert len({id(o) for o in run.outcomes}) == len(builds)
    for o in run.outcomes:
        assert o.build.arrival <= o.start < o.finish
        assert o.finish - o.start == pytest.approx(o.build.warm if o.warm else o.build.cold)
    assert sum(run.busy.values()) == pytest.approx(sum(o.finish - o.start for o in run.outcomes))
    # never more than `slots` builds at once on a node
    for node in farm.names():
        edges = sorted([(o.start, 1) for o in run.outcomes if o.node == node]
                       + [(o.finish, -1) for o in run.outcomes if o.node == node], key=lambda e: (e[0], e[1]))
        running = peak = 0
        for _, d in edges:
            running += d
            peak = max(peak, running)
        assert peak <= farm.slots
    # no new build on the node in its outage
    assert farm.outage
    i, begin, end = farm.outage
    assert not [o for o in run.outcomes if o.node == farm.names()[i] and begin <= o.build.arrival < end]


def test_one_node_per_platform_every_policy_gives_identical_results() -> None:
    builds = workload.day(1, CAL, SMALL, seed=2)
    runs = {name: engine.simulate(builds, engine.Farm(1), p) for name, p in policies.all_policies(2, 4).items()}
    seen = {name: [(o.node, o.start, o.finish, o.warm) for o in r.outcomes] for name, r in runs.items()}
    assert len({tuple(v) for v in seen.values()}) == 1
    rows = [report.metrics(name, 1, r) for name, r in runs.items()]
    assert len({(m.hit_ratio, m.p50_s, m.p95_s) for m in rows}) == 1


@pytest.mark.parametrize(("name", "c", "floor"), [*((n, c, 0) for n, c in policies.BOUNDED_C.items()),
                                                   ("bounded c=1.25 +slots", 1.25, 2)])
def test_bounded_load_never_places_over_its_bound(name: str, c: float, floor: int) -> None:
    builds = workload.day(8, CAL, workload.Workload(builds_per_node=400), seed=4)
    run = engine.simulate(builds, engine.Farm(8, slots=2), policies.all_policies(4, 2)[name])
    assert max(o.node_load for o in run.outcomes) >= 1  # the bound was put to work
    for o in run.outcomes:
        assert o.node_load + 1 <= max(floor, bound(o.platform_load, o.live, c)), o
    # while plain rendezvous, on the same day, does pile onto a key's node beyond it
    plain = engine.simulate(builds, engine.Farm(8, slots=2), policies.rendezvous)
    assert any(o.node_load + 1 > bound(o.platform_load, o.live, c) for o in plain.outcomes)


def test_sticky_ring_moves_only_the_removed_pods_keys() -> None:
    pods = [f"buildkit-{i}" for i in range(6)]
    keys = [f"repo-{k:03d}" for k in range(200)]
    before = {k: policies.sticky_ring(k, pods, {}) for k in keys}
    after = {k: policies.sticky_ring(k, pods[1:], {}) for k in keys}
    assert {k for k in keys if before[k] != after[k]} == {k for k in keys if before[k] == "buildkit-0"}


def test_main_writes_json_markdown_and_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--seed", "3", "--nodes", "1", "2", "--slots", "2", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "rendezvous" in printed and "sweep: 18 runs" in printed
    data = json.loads((tmp_path / "simulation.json").read_text())
    assert {(r["policy"], r["nodes"]) for r in data["rows"]} == {
        (p, n) for p in policies.all_policies(3, 4) for n in (1, 2)}
    md = (tmp_path / "README.md").read_text()
    assert "    python -m bench.simulate --seed 3 --nodes 1 2 --slots 2\n" in md
    assert data["meta"]["slots"] == 2 and "Each node runs 2 builds at once" in md
    assert "s1_ephemeral_full" in md and "s3_farm_change" in md
    # the winners table names, per node count, the policy with the most cache hits
    best2 = max((r for r in data["rows"] if r["nodes"] == 2), key=lambda r: r["hit_ratio"])
    assert any(line.startswith("| 2 | ") and best2["policy"] in line.split("|")[2] for line in md.splitlines())
    assert (tmp_path / "simulation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
