"""Figures a test tier prints for the reader (timings are reported, never asserted).

pytest captures a fixture's output and shows it only for a failing test; these lines must show on
every run (they go into closing notes and CI logs), so they are written past the capture."""

from __future__ import annotations

from collections.abc import Mapping

import pytest


def print_past_capture(request: pytest.FixtureRequest, line: str) -> None:
    """Write `line` (after a blank line) to the terminal even under pytest's output capture."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(line)


def timings_line(title: str, timings: Mapping[str, float]) -> str:
    """`title (s): step 1.2, step 3.4` in the order the steps ran."""
    return f"{title} (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
