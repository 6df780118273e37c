"""components/insights.py: history records (real ones, recorded from buildkitd v0.32.2) to figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from components import insights as ins

FIXTURE = Path(__file__).parent / "fixtures" / "histories" / "node-a.jsonl"


def test_real_records_parse_into_builds_with_their_repository_and_cache_counts() -> None:
    records = ins.parse_histories(FIXTURE.read_text())
    builds = {b.ref: b for b in ins.builds("amd64-1", records)}
    assert len(builds) == 4
    rebuild = builds["nu6jc0pj9tp34wh4ir1wzhawe"]
    assert (rebuild.repo, rebuild.cached_steps, rebuild.total_steps, rebuild.failed) == (
        "https://github.com/example/repo-a", 2, 6, False)
    failed = builds["1cmmh6wg4tkculg4l7jqk1vwi"]
    assert failed.failed and failed.repo == "https://github.com/example/repo-b"
    assert all(b.duration is not None and b.duration >= 0 for b in builds.values())


def test_report_by_repository_counts_failures_and_the_cache_ratio() -> None:
    bs = ins.builds("amd64-1", ins.parse_histories(FIXTURE.read_text()))
    rows = {r.key: r for r in ins.report(bs, "repo")}
    a, b = rows["https://github.com/example/repo-a"], rows["https://github.com/example/repo-b"]
    assert (a.builds, a.failures, a.cached_steps, a.total_steps) == (2, 0, 2, 12)
    assert (b.builds, b.failures, b.cached_steps, b.total_steps) == (2, 1, 0, 10)
    assert a.hit_ratio == pytest.approx(2 / 12)


def rec(ref: str, start: float, secs: float, *, source: str = "https://x/r.git", cached: int = 0, total: int = 10,
        error: bool = False, running: bool = False) -> dict[str, object]:
    r: dict[str, object] = {"Ref": ref, "FrontendAttrs": {"vcs:source": source},
                            "CreatedAt": {"seconds": int(start), "nanos": int((start % 1) * 1e9)},
                            "numTotalSteps": total}
    if not running:
        end = start + secs
        r["CompletedAt"] = {"seconds": int(end), "nanos": round((end % 1) * 1e9)}
    if cached:
        r["numCachedSteps"] = cached
    if error:
        r["error"] = {"code": 2, "message": "boom"}
    return r


def test_a_ref_seen_on_two_nodes_counts_once_and_running_builds_are_left_out() -> None:
    shared = rec("r1", 1000, 10)
    merged = ins.merge([("n1", [shared, rec("r2", 1000, 5, running=True)]), ("n2", [shared, rec("r3", 1000, 4)])])
    assert [(b.node, b.ref) for b in merged] == [("n1", "r1"), ("n1", "r2"), ("n2", "r3")]
    rows = ins.report(merged, "node")
    assert {r.key: r.builds for r in rows} == {"n1": 1, "n2": 1}


def test_time_saved_is_cold_median_minus_each_warm_build_and_zero_without_a_cold_build() -> None:
    bs = ins.builds("n", [rec("c1", 0, 100), rec("c2", 0, 120), rec("c3", 0, 140),
                          rec("w1", 0, 10, cached=9), rec("w2", 0, 130, cached=1),
                          rec("o1", 0, 5, source="https://x/other.git", cached=5)])
    rows = {r.key: r for r in ins.report(bs, "repo")}
    # cold median 120: w1 saved 110, w2 was slower than cold (0), the cold builds 20 + 0 + 0
    assert rows["https://x/r"].saved_s == pytest.approx(110 + 20)
    assert rows["https://x/other"].saved_s == 0


def test_repository_drops_credentials_and_the_git_suffix() -> None:
    assert ins.repository({"vcs:source": "https://user:tok@github.com/acme/app.git"}) == "https://github.com/acme/app"
    assert ins.repository({}, fallback="key-7") == "key-7"
    assert ins.repository({}) == ins.UNKNOWN_REPO


def test_percentile_is_a_value_that_was_seen() -> None:
    assert ins.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert ins.percentile([float(i) for i in range(1, 101)], 95) == 95.0
    assert ins.percentile([], 50) is None


def test_a_corrupt_history_line_is_named() -> None:
    with pytest.raises(ValueError, match="history line 2 is not JSON"):
        ins.parse_histories('{"record": {}}\n{oops\n')
