"""How `bkf insights` scales with the history it reads: 1,000, 4,000 and 16,000 records.

A benchmark-style test (figures printed on every run, never a timed assert: the machine is shared).
The records are the real ones of fixtures/histories/node-a.jsonl (buildkitd v0.32.2, about 1.5 kB a
line with their exporter responses and provenance), copied with new refs, times, repositories and
cache counts, spread over three nodes, one build in ten read from two nodes (the dedupe path). What
is timed is all `bkf insights` does after buildctl answered: parse the JSON lines, merge the nodes,
report by repository, node and day. The per-record cost printed for each size says whether it stays
linear (docs/insights.md quotes these lines).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from components import insights as ins
from tests.support.figures import print_past_capture

FIXTURE = Path(__file__).parent / "fixtures" / "histories" / "node-a.jsonl"
NODES = ("amd64-1", "arm64-1", "amd64-2")
SIZES = (1000, 4000, 16000)
START = 1_796_000_000
#: the best of three runs is printed: the machine is shared, a slower run measures the neighbours
REPEATS = 3


def history(n: int) -> dict[str, list[str]]:
    """node -> its `buildctl debug histories --format json` lines; n distinct builds in all."""
    templates = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
    per_node: dict[str, list[str]] = {node: [] for node in NODES}
    for i in range(n):
        template = templates[i % len(templates)]
        start = START + i * 97  # a build every ~1.6 minutes: 16,000 of them span 18 days
        attrs = {**template["record"]["FrontendAttrs"],
                 "vcs:source": f"https://git.example.com/team{i % 40 % 7}/service{i % 40}.git"}
        r: dict[str, Any] = {**template["record"], "Ref": f"ref{i:06d}", "FrontendAttrs": attrs,
                             "CreatedAt": {"seconds": start, "nanos": 0},
                             "CompletedAt": {"seconds": start + 20 + i % 300, "nanos": 0},
                             "numTotalSteps": 12, "numCachedSteps": i % 13}
        line = json.dumps({**template, "record": r})
        per_node[NODES[i % len(NODES)]].append(line)
        if i % 10 == 0:  # also in another node's history: must be counted once
            per_node[NODES[(i + 1) % len(NODES)]].append(line)
    return per_node


def test_insights_over_1000_4000_16000_records_stays_linear(request: pytest.FixtureRequest) -> None:
    per_record: dict[int, float] = {}
    for n in SIZES:
        texts = {node: "\n".join(lines) for node, lines in history(n).items()}
        times = []
        for _ in range(REPEATS):
            t = time.perf_counter()
            merged = ins.merge([(node, ins.parse_histories(text)) for node, text in texts.items()])
            reports = {by: ins.report(merged, by) for by in ins.GROUPS}
            times.append(time.perf_counter() - t)
        seconds = min(times)
        # the figures are right, not only fast: every build once, in every grouping
        assert len(merged) == n
        assert {by: sum(r.builds for r in rows) for by, rows in reports.items()} == dict.fromkeys(ins.GROUPS, n)
        assert len(reports["repo"]) == 40 and len(reports["node"]) == len(NODES)
        assert sum(r.failures for r in reports["repo"]) == sum(1 for b in merged if b.failed) > 0
        per_record[n] = seconds / n
        mb = sum(len(t) for t in texts.values()) / 1e6
        print_past_capture(request, f"bkf insights over {n} history records ({mb:.1f} MB of buildctl JSON, 3 nodes): "
                                    f"{seconds:.2f} s (best of {REPEATS}), {per_record[n] * 1e6:.0f} us/record")
    print_past_capture(request, f"per-record cost, 16,000 vs 1,000 records: "
                                f"{per_record[16000] / per_record[1000]:.2f}x (1.00x: linear)")
