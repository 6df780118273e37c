"""The reliability suite's shared farm (two nodes, h43 and h44, plus h45 as a stand-in metadata
service) and the figures table printed at the end of the run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.hosts import running_hosts
from tests.reliability import figures
from tests.reliability.farm import Farm

NODES = ("h43", "h44")
#: not a node: its namespace plays the cloud metadata service (169.254.169.254) for the RUN-step probes
METADATA_HOST = "h45"


@pytest.fixture(scope="package")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    d = tmp_path_factory.mktemp("reliability")
    with running_hosts([*NODES, METADATA_HOST], d / "state") as hs:
        f = Farm.make(hs, d)
        for h in NODES:
            log = f.install(h)
            assert "buildkitd is up" in log, log
        yield f


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not figures.ROWS:
        return
    mode = "full" if figures.FULL else "reduced (BKF_RELIABILITY=full for the full counts)"
    terminalreporter.section(f"reliability figures, {mode} run")
    terminalreporter.write_line(figures.table())
    out = os.environ.get("BKF_RELIABILITY_TABLE")
    if out:
        Path(out).write_text(figures.table() + "\n")
