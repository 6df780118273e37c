"""bench/report.py: the stats, ratios, verdicts, table and README block of `make bench` (figures are
made up here on purpose: these check the arithmetic and the wording, never a timing)."""

from __future__ import annotations

import pytest

from bench import report


def scn(**medians: list[float]) -> dict[str, dict[str, object]]:
    return {k: {"title": report.TITLES[k], "unit": "s", "samples": v} for k, v in medians.items()}


FULL = scn(s1_ephemeral_full=[200.0, 210.0, 190.0], s2_ephemeral_registry_cache_change=[150.0, 160.0, 155.0],
           s3_farm_change=[4.0, 5.0, 3.0], s4_farm_noop=[0.5, 0.4, 0.6], s5_farm_restart_change=[4.0, 4.5, 4.4],
           s6_farm_change_no_cache_mounts=[100.0, 100.0, 100.0], s7_noop_mtls_tcp=[0.55, 0.5, 0.6],
           s7_noop_unix=[0.5, 0.49, 0.51], s8_ready_kill9=[2.5, 2.4, 2.6], s9_preview_2=[10.0, 10.0, 10.0],
           s9_preview_8=[11.2, 11.2, 11.2], s9_preview_32=[16.0, 16.0, 16.0])


def by_name(prefix: str) -> report.Ratio:
    return next(r for r in report.ratios(FULL) if r.name.startswith(prefix))


def test_stats_are_min_median_max() -> None:
    assert report.stats([3.0, 1.0, 2.0, 10.0]) == report.Stats(4, 1.0, 2.5, 10.0)
    with pytest.raises(ValueError):
        report.stats([])


def test_ratios_are_median_over_median_with_the_issues_targets() -> None:
    r = by_name("1 / 3")
    assert r.value == pytest.approx(200.0 / 4.0) and r.met is True and r.target.startswith(">= 15x")
    r = by_name("5 / 3")
    assert r.value == pytest.approx(4.4 / 4.0) and r.met is True  # 1.1 exactly: the target is inclusive
    assert by_name("6 / 3").met is None  # no target in the issue
    r = by_name("7:")
    assert r.value == pytest.approx(0.05) and r.met is True
    r = by_name("8:")
    assert r.value == 2.6 and r.met is False  # the worst run decides
    assert "MISSED" in report.verdict(r)


def test_missed_and_unmeasured_are_said_so() -> None:
    slow = {**FULL, **scn(s3_farm_change=[20.0, 20.0, 20.0])}
    r = next(r for r in report.ratios(slow) if r.name.startswith("1 / 3"))
    assert r.value == pytest.approx(10.0) and r.met is False
    empty = report.ratios({})
    assert all(r.value is None and r.met is None for r in empty)
    assert all(report.verdict(r).startswith("not measured") for r in empty)


def test_preview_growth_linear_or_not() -> None:
    assert report.preview_slopes({2: 10.0, 8: 11.2, 32: 16.0}) == (pytest.approx(0.2), pytest.approx(0.2))
    assert by_name("9:").met is True
    quadratic = {**FULL, **scn(s9_preview_32=[10.0 + 0.01 * 32 * 32] * 3, s9_preview_8=[10.0 + 0.01 * 64] * 3,
                               s9_preview_2=[10.04] * 3)}
    r = next(r for r in report.ratios(quadratic) if r.name.startswith("9:"))
    assert r.met is False


def test_table_lists_every_scenario_and_ratio() -> None:
    t = report.table(FULL)
    assert "| 1. ephemeral builder, empty state, full build | 3 | 190.0 s | 200.0 s | 210.0 s |" in t
    assert "| 4. farm (warm), no change | 3 | 0.400 s | 0.500 s | 0.600 s |" in t
    assert "| arm64 (QEMU-emulated here): farm, no change | 0 | — | — | not measured |" in t
    assert "| 1 / 3: CI runner without cache vs the warm farm | 50.0x | >= 15x (published: 8-12x) | met |" in t
    assert "**MISSED**" in t  # kill -9


def test_readme_block_replaces_only_between_the_markers() -> None:
    data = {"meta": {"date": "2026-11-24 11:00 UTC", "machine": "2 cores, 24 GiB", "workload": "w", "runs": 3},
            "scenarios": FULL}
    block = report.readme_block(data, "bench.png")
    text = f"intro\n{report.BEGIN}\nold table\n{report.END}\noutro\n"
    new = report.replace_block(text, block)
    assert new.startswith("intro\n") and new.endswith("\noutro\n") and "old table" not in new
    assert "2 cores, 24 GiB" in new and "![bench chart](bench.png)" in new
    assert report.replace_block(new, block) == new  # idempotent
    with pytest.raises(ValueError):
        report.replace_block("no markers", block)


def test_headline_quotes_the_ratios_and_their_verdicts() -> None:
    h = report.headline(FULL)
    assert "builds 50.0x (met) faster on the warm farm" in h
    assert "38.8x faster than on a runner with a registry cache" in h  # medians 155 / 4
    assert "takes 1.10x (met) the warm one" in h
    assert "(not measured)" in report.headline({})


def test_preview_noise_gives_no_verdict() -> None:
    noisy = {**FULL, **scn(s9_preview_2=[3.6], s9_preview_8=[3.3], s9_preview_32=[8.6])}
    r = next(r for r in report.ratios(noisy) if r.name.startswith("9:"))
    assert r.value == pytest.approx((8.6 - 3.3) / 24) and r.met is None
    assert report.verdict(r) == "inconclusive" and r.why.startswith("inconclusive")


def test_floor_and_load_ratios() -> None:
    figures = {**FULL, **scn(s3_floor_local_go=[2.0, 3.0, 3.5], s10_load=[6.0, 6.0, 6.0],
                             s10_registry_pull=[4.0, 4.0, 4.0], s10_load_change=[5.0, 5.0, 5.0],
                             s10_registry_pull_change=[1.0, 1.0, 1.0])}
    r = {x.name.split(":")[0]: x for x in report.ratios(figures)}
    assert r["3 / floor"].value == pytest.approx(4.0 / 3.0) and r["3 / floor"].met is True
    assert r["3 / floor"].target == "<= 1.5x"
    slow = next(x for x in report.ratios({**figures, **scn(s3_floor_local_go=[2.0])}) if x.name.startswith("3 / f"))
    assert slow.value == pytest.approx(2.0) and slow.met is False
    loads = [x for x in report.ratios(figures) if x.name.startswith("10:")]
    assert [x.value for x in loads] == [pytest.approx(1.5), pytest.approx(5.0)]
    assert all(x.met is None for x in loads)  # no target: the figures decide `bkf load`


def test_floor_ratio_says_its_run_by_run_spread() -> None:
    # 3 and 3f alternate: 4.0/2.0, 5.0/3.0, 3.0/3.5 run by run; the verdict stays median over median
    figures = {**FULL, **scn(s3_floor_local_go=[2.0, 3.0, 3.5])}
    r = next(x for x in report.ratios(figures) if x.name.startswith("3 / floor"))
    assert r.value == pytest.approx(4.0 / 3.0)
    assert r.why == "run by run 0.86x to 2.00x, median 1.67x"
    assert "| met (run by run 0.86x to 2.00x, median 1.67x) |" in report.table(figures)
    # unpaired (a run missing) or a single run: no spread is claimed
    assert report.paired_ratios({**figures, **scn(s3_floor_local_go=[2.0, 3.0])}, "s3_farm_change",
                                "s3_floor_local_go") == []
    one = next(x for x in report.ratios({**FULL, **scn(s3_farm_change=[4.0], s3_floor_local_go=[2.0])})
               if x.name.startswith("3 / floor"))
    assert one.value == pytest.approx(2.0) and one.why == ""


def test_readme_block_says_how_often_the_targeted_scenarios_ran() -> None:
    meta = {"date": "d", "machine": "m", "workload": "w", "runs": 3}
    block = report.readme_block({"meta": {**meta, "ratio_runs": 9}, "scenarios": FULL}, "bench.png")
    assert "; 3 runs per scenario (9 of 3, 3f and 5, whose ratios have targets)" in block
    assert "3 runs per scenario." in report.readme_block({"meta": meta, "scenarios": FULL}, "bench.png")


def test_the_bind_mount_shape_has_the_same_target_and_its_own_spread() -> None:
    # 3, 3b and 3f alternate: 3b's pairs are each 3b over the 3f of its round
    figures = {**FULL, **scn(s3_floor_local_go=[2.0, 3.0, 3.5], s3b_farm_change_bind_source=[3.0, 4.2, 2.8])}
    r = {x.name.split(":")[0]: x for x in report.ratios(figures)}
    assert r["3b / floor"].value == pytest.approx(3.0 / 3.0) and r["3b / floor"].met is True
    assert r["3b / floor"].target == r["3 / floor"].target == "<= 1.5x"
    assert r["3b / floor"].why == "run by run 0.80x to 1.50x, median 1.40x"
    slow = {**figures, **scn(s3b_farm_change_bind_source=[5.0, 5.0, 5.0])}
    r3b = next(x for x in report.ratios(slow) if x.name.startswith("3b / floor"))
    assert r3b.value == pytest.approx(5.0 / 3.0) and r3b.met is False and "MISSED" in report.verdict(r3b)
    assert next(x for x in report.ratios(FULL) if x.name.startswith("3b")).why == "not measured"
    meta = {"date": "d", "machine": "m", "workload": "w", "runs": 3, "ratio_runs": 9}
    assert "(9 of 3, 3b, 3f and 5, whose ratios" in report.readme_block({"meta": meta, "scenarios": figures}, "b.png")
