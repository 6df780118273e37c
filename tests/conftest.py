"""The whole run: time spent per tier, printed at the end (make test's budget is read from it).

Under scripts/test.sh (BKF_TIER_TIMES set) the tiers are also added to the run's file, so the
script prints one table for all its processes at its very end (tests/support/tier_times.py)."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest

from tests.support import tier_times

_TIER_SECONDS: dict[str, float] = defaultdict(float)
_TIER_TESTS: dict[str, int] = defaultdict(int)


def _tier(nodeid: str) -> str:
    # tests/<tier>/test_x.py::name -> <tier>
    parts = Path(nodeid.split("::", 1)[0]).parts
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else parts[0]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # setup and teardown count too: a tier's fixtures (hosts, stacks, clusters) are most of its time
    _TIER_SECONDS[_tier(report.nodeid)] += report.duration
    if report.when == "call":
        _TIER_TESTS[_tier(report.nodeid)] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if os.environ.get(tier_times.ENV):
        tier_times.add(Path(os.environ[tier_times.ENV]), _TIER_SECONDS, _TIER_TESTS)
    if len(_TIER_SECONDS) < 2:
        return
    terminalreporter.section("time per tier")
    for tier, seconds in sorted(_TIER_SECONDS.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{tier:<14} {seconds:8.1f} s  {_TIER_TESTS[tier]:4d} tests")
    terminalreporter.write_line(f"{'total':<14} {sum(_TIER_SECONDS.values()):8.1f} s")
