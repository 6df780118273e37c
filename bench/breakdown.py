"""Where a farm build's seconds go (issue 23, item 2), from BuildKit's own per-step timings: the
`--progress plain` log buildx prints, one `#N <name>` header and one `#N DONE 1.2s` per vertex.
Pure functions, unit-tested in tests/unit/test_bench_breakdown.py.

The parts: the front end's loads (Dockerfile, .dockerignore, metadata), the context transfer
(`[internal] load build context`), each RUN's exec (the RUN step's own time: mounts, container
start, the process), the other steps (COPY, ADD), the export, and what no step accounts for
(client start, session, solve scheduling: wall time minus the steps' sum; steps that overlap make
it smaller, even negative). The plain log rounds every step to 0.1 s.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

OUTSIDE = "outside every step (client start, session, solve scheduling)"


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float  # 0.0 for a CACHED step
    cached: bool


def steps(plain_log: str) -> list[Step]:
    """The vertices of a `--progress plain` log in order, with their DONE time (CACHED: 0 s)."""
    names: dict[str, str] = {}
    done: dict[str, float] = {}
    cached: set[str] = set()
    for line in plain_log.splitlines():
        m = re.match(r"^#(\d+) (.*)$", line)
        if not m:
            continue
        vid, rest = m.groups()
        if vid == "0":  # "#0 building with ... instance": the client's own line, no vertex
            continue
        if vid not in names:
            names[vid] = rest.strip()
        elif d := re.fullmatch(r"DONE (\d+(?:\.\d+)?)s", rest.strip()):
            done[vid] = float(d.group(1))
        elif rest.strip() == "CACHED":
            cached.add(vid)
    return [Step(names[v], done.get(v, 0.0), v in cached) for v in names]


def part(name: str) -> str:
    """The part of a build a vertex belongs to."""
    if name.startswith("[internal] load build context"):
        return "context transfer"
    if name.startswith("[internal]") or name.startswith("resolve image config"):
        return "front end (Dockerfile, .dockerignore, metadata)"
    if name.startswith("exporting"):
        return "export"
    if m := re.match(r"^\[[^\]]*\] RUN (.*)$", name):
        cmd = re.sub(r"--mount=\S+\s*", "", m.group(1)).strip().replace("\\", "").split()
        return "RUN " + " ".join(cmd[:3])
    return "other steps (COPY, ADD)"


def parts(wall: float, plain_log: str) -> dict[str, float]:
    """Seconds per part of one build (insertion order: the log's), and what no step accounts for."""
    out: dict[str, float] = {}
    for s in steps(plain_log):
        p = part(s.name)
        out[p] = round(out.get(p, 0.0) + s.seconds, 3)
    out[OUTSIDE] = round(wall - sum(out.values()), 3)
    return out


def median_parts(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The median of each part over runs (a part missing from a run counts 0 there)."""
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r if k not in keys]
    return {k: round(statistics.median([r.get(k, 0.0) for r in runs]), 3) for k in keys}


def table(wall: float, med: Mapping[str, float], floor: float | None) -> str:
    """Markdown: each part's median seconds and share of the build's median wall time; with the
    floor (the same change by a local `go build`), what the RUN that compiles adds over it."""
    rows = ["| part of the farm's one-line-change build (median) | seconds | share |", "|---|---:|---:|"]
    for k, v in med.items():
        rows.append(f"| {k} | {v:.3f} s | {100 * v / wall:.0f}% |" if wall else f"| {k} | {v:.3f} s | — |")
    rows.append(f"| whole build (wall, median) | {wall:.3f} s | 100% |")
    if floor is not None:
        build_runs = [v for k, v in med.items() if k.startswith("RUN go build")]
        if build_runs:
            rows.append(f"| the `go build` RUN over the local `go build` ({floor:.3f} s): mounts, container, "
                        f"a colder or busier compiler | {build_runs[0] - floor:+.3f} s | — |")
        rows.append(f"| whole build over the local `go build` | {wall - floor:+.3f} s | — |")
    return "\n".join(rows) + "\n"
