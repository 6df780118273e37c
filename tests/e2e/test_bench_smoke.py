"""Tier 3: `make bench` in smoke mode (one run, the one-file workload), so the bench cannot rot.

Runs the real bench end to end: its own farm on h41/h42 (real `pulumi up`, torn down after), the
throwaway buildkitd, the registry cache, the local `go build` floor, the no-change floor at 10 and
1,000 files, `--load` against the registry path into a Docker engine of its own, every scenario
once. Checks that the JSON it writes holds
every scenario with real positive figures and the ratios computed from them; NO timing is
asserted (the figures are printed: the bench's table is in the test's output).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench import breakdown, report
from harness.hosts import ROOT, need, run

pytestmark = pytest.mark.e2e


def test_bench_smoke_writes_every_scenario(tmp_path: Path) -> None:
    need("pulumi", "pulumi-language-python", "buildkitd", "buildctl", "docker-buildx", "ssh", "openssl", "go",
         "nsenter", "registry", "dockerd", "docker")
    r = subprocess.run([sys.executable, "-m", "bench.farm_bench", "--smoke", "--out", str(tmp_path)], cwd=ROOT,
                       text=True, capture_output=True, timeout=1800)
    print(r.stdout[-6000:])
    assert r.returncode == 0, f"stdout:\n{r.stdout[-4000:]}\nstderr:\n{r.stderr[-4000:]}"
    data = json.loads((tmp_path / "bench.json").read_text())
    assert data["meta"]["smoke"] is True and data["meta"]["runs"] == 1 and data["meta"]["error"] is None
    scn = data["scenarios"]
    assert sorted(scn) == sorted(report.TITLES)
    # smoke mode sizes the no-change floor's contexts to 10 and 1,000 files; the full run adds 10,000
    assert scn.pop("s4_noop_files_10000") == {"title": report.TITLES["s4_noop_files_10000"], "unit": "s",
                                              "samples": [], "missing": "--files 10,1000"}
    for key, s in scn.items():
        assert len(s["samples"]) == 1, (key, s)
        assert all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in s["samples"]), (key, s)
    # the ratios in the JSON are the ones the figures give, each with a value
    assert data["ratios"] == [r.__dict__ for r in report.ratios(scn)]
    assert all(r["value"] is not None for r in data["ratios"]), data["ratios"]
    # scenario 3 split by BuildKit's own trace of it (read from the node's build history): every part
    # of the build, the compile's process apart from its container, summing to the wall time
    bd = data["breakdown"]
    assert len(bd["runs"]) == 1 and bd["wall_median"] == scn["s3_farm_change"]["samples"][0]
    compile_ = f"RUN go build -trimpath: {breakdown.PROCESS}"
    assert {breakdown.CONTEXT, breakdown.EXPORT, compile_, breakdown.OUTSIDE} <= set(bd["median"]), bd
    assert 0 < bd["median"][compile_] < bd["wall_median"], bd
    assert math.isclose(sum(bd["median"].values()), bd["wall_median"], abs_tol=0.01), bd
    # and 3b's (the source bind-mounted): the same parts, its own wall time, no COPY of the source
    bind = bd["bind"]
    assert len(bind["runs"]) == 1 and bind["wall_median"] == scn["s3b_farm_change_bind_source"]["samples"][0]
    assert {breakdown.CONTEXT, breakdown.EXPORT, compile_, breakdown.OUTSIDE} <= set(bind["median"]), bind
    assert math.isclose(sum(bind["median"].values()), bind["wall_median"], abs_tol=0.01), bind
    assert "Where scenario 3's time goes" in r.stdout and "| 3b (bind mount): seconds | share |" in r.stdout
    # the table printed and written, the chart a real PNG
    assert "| 1. ephemeral builder, empty state, full build | 1 |" in r.stdout
    assert (tmp_path / "README-table.md").read_text().startswith(report.BEGIN)
    assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # nothing left behind: no hosts, no stacks' config files, no registry, no work dir
    assert not [ln for ln in run(["ip", "netns", "list"]).stdout.splitlines() if ln.split()[0] in
                ("bkf-h41", "bkf-h42")]
    assert not list(ROOT.glob("Pulumi.bench*.yaml"))
    assert not (ROOT / ".state" / "bench-smoke").exists()
    assert "registry" not in run(["bash", "-c", "ss -ltnp 'sport = :5481'"]).stdout
