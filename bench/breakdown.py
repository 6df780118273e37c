"""Where a farm build's seconds go (issue 23, item 2), from BuildKit's own trace of the build: the
OpenTelemetry spans the daemon keeps in its build history (`docker-buildx history export REF`
writes them into the bundle as a layer of type ``application/vnd.buildkit.otlp.json.v0``: one JSON
span after another). Each step is a span with its `vertex` attribute, at nanosecond precision; a
RUN step's span carries the executor's events ("Container started", "Container exited"), which
split it into the start (mounts, the container), the process, and what follows it (unmounts, the
commit of its output).

Pure functions, unit-tested in tests/unit/test_bench_breakdown.py. The parts sum to the build's wall
time: what no span accounts for is "between steps" (inside the solve: cache keys, scheduling) or
"outside the solve" (the client's start, its connection and capability probe, the session, the
reply).
"""

from __future__ import annotations

import io
import json
import re
import statistics
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

OTLP_LAYER = "application/vnd.buildkit.otlp.json.v0"
FRONT_END = "front end (Dockerfile, .dockerignore, metadata)"
CONTEXT = "context transfer"
OTHER = "other steps (COPY, ADD)"
EXPORT = "export (and its provenance)"
HISTORY = "history record"
BETWEEN = "between steps (cache keys, scheduling)"
TITLE = ("Where scenario 3's time goes, and 3b's beside it (BuildKit's own trace of each build, from the node's "
         "build history)")
OUTSIDE = "outside the solve (client start, connection, session, reply)"
START, PROCESS, AFTER = "start (mounts, container)", "the process", "after the process (unmounts, commit)"


@dataclass(frozen=True)
class Span:
    name: str
    start: float  # seconds since the epoch
    end: float
    vertex: str  # the step's digest, "" for a span that is not a step
    events: dict[str, float] = field(default_factory=dict)  # event name -> its time

    @property
    def seconds(self) -> float:
        return self.end - self.start


def _time(s: str) -> float:
    """RFC 3339 with nanoseconds ("2026-12-05T02:45:16.369123456Z") to seconds since the epoch."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", s)
    if not m:
        raise ValueError(f"not an RFC 3339 time: {s!r}")
    whole = datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return whole.replace(tzinfo=whole.tzinfo or UTC).timestamp() + float("0." + (m.group(2) or "0"))


def spans(otlp_json: str) -> list[Span]:
    """The spans of an OTLP JSON stream (objects one after another, as BuildKit stores them), by start."""
    out: list[Span] = []
    dec, i = json.JSONDecoder(), 0
    while True:
        while i < len(otlp_json) and otlp_json[i].isspace():
            i += 1
        if i >= len(otlp_json):
            break
        o, i = dec.raw_decode(otlp_json, i)
        attrs = {a["Key"]: a["Value"]["Value"] for a in o.get("Attributes") or []}
        out.append(Span(o["Name"], _time(o["StartTime"]), _time(o["EndTime"]), str(attrs.get("vertex", "")),
                        {e["Name"]: _time(e["Time"]) for e in o.get("Events") or []}))
    return sorted(out, key=lambda s: s.start)


def bundle_trace(bundle: bytes) -> str:
    """The OTLP JSON of the one build record in a `docker-buildx history export` bundle (OCI layout)."""
    with tarfile.open(fileobj=io.BytesIO(bundle)) as t:
        files = {m.name: f.read() for m in t.getmembers() if m.isfile() and (f := t.extractfile(m)) is not None}

    def blob(digest: str) -> bytes:
        if (b := files.get("blobs/" + digest.replace(":", "/"))) is None:
            raise ValueError(f"the bundle has no blob {digest}")
        return b

    manifest = json.loads(blob(json.loads(files["index.json"])["manifests"][0]["digest"]))
    layers = [la for la in manifest["layers"] if la["mediaType"] == OTLP_LAYER]
    if not layers:
        raise ValueError("the build record has no trace")
    return blob(layers[0]["digest"]).decode()


def run_label(name: str) -> str:
    """"[build 2/2] RUN --mount=... go build -trimpath ..." -> "RUN go build -trimpath"."""
    m = re.match(r"^\[[^\]]*\] RUN (.*)$", name)
    cmd = re.sub(r"--mount=\S+\s*", "", m.group(1) if m else name).strip().replace("\\", "").split()
    return "RUN " + " ".join(cmd[:3])


def part(s: Span) -> str:
    """The part of a build a step belongs to (a RUN step with its container's events is split by
    parts() instead)."""
    if s.name.startswith("[internal] load build context"):
        return CONTEXT
    if s.name.startswith("[internal]") or s.name.startswith("resolve image config"):
        return FRONT_END
    return OTHER


def parts(wall: float, trace: Sequence[Span]) -> dict[str, float]:
    """Seconds per part of one build whose wall time (as the client saw it) was ``wall``; the parts
    sum to it. Steps served from the cache have spans too ("load cache: ..."): they count between
    steps, with the solver's own work."""
    out: dict[str, float] = {}

    def add(k: str, v: float) -> None:
        out[k] = out.get(k, 0.0) + v

    steps = [s for s in trace if s.vertex and not s.name.startswith(("load cache:", "cache request:"))]
    export = [s for s in trace if s.name.startswith(("exporting", "create provenance attestation"))]
    history = [s for s in trace if s.name == "create history record"]
    inside = steps + export + history
    if not steps:
        raise ValueError("the trace has no build step")
    for s in steps:
        if " RUN " in s.name and {"Container started", "Container exited"} <= set(s.events):
            label = run_label(s.name)
            add(f"{label}: {START}", s.events["Container started"] - s.start)
            add(f"{label}: {PROCESS}", s.events["Container exited"] - s.events["Container started"])
            add(f"{label}: {AFTER}", s.end - s.events["Container exited"])
        else:
            add(part(s), s.seconds)
    add(EXPORT, sum(s.seconds for s in export))
    add(HISTORY, sum(s.seconds for s in history))
    first, last = min(s.start for s in inside), max(s.end for s in inside)
    out[BETWEEN] = (last - first) - sum(out.values())
    out[OUTSIDE] = wall - (last - first)
    return {k: round(v, 3) for k, v in out.items()}


def median_parts(runs: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The median of each part over runs (a part missing from a run counts 0 there)."""
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r if k not in keys]
    return {k: round(statistics.median([r.get(k, 0.0) for r in runs]), 3) for k in keys}


@dataclass(frozen=True)
class Column:
    """One scenario's column of the table: its label, median wall time and median parts."""
    label: str
    wall: float
    median: Mapping[str, float]


def table(columns: Sequence[Column], floor: float | None) -> str:
    """Markdown: each part's median seconds and share of the build's median wall time, a pair of
    columns per scenario (a part a scenario has not: "—"); with the floor (the same change by a
    local `go build`), what the compile in the container takes over it, and what the whole build does."""
    if not columns:
        raise ValueError("no column")
    keys: list[str] = []
    for c in columns:
        keys += [k for k in c.median if k not in keys]

    def cell(c: Column, v: float | None) -> str:
        if v is None:
            return "— | —"
        return f"{v:.3f} s | {100 * v / c.wall:.0f}%" if c.wall else f"{v:.3f} s | —"

    head = "".join(f" {c.label}: seconds | share |" for c in columns)
    rows = [f"| part of the farm's one-line-change build (median) |{head}", "|---|" + "---:|---:|" * len(columns)]
    for k in keys:
        rows.append(f"| {k} | " + " | ".join(cell(c, c.median.get(k)) for c in columns) + " |")
    rows.append("| whole build (wall, median) | " + " | ".join(f"{c.wall:.3f} s | 100%" for c in columns) + " |")
    if floor is not None:
        def compile_over(c: Column) -> str:
            v = [x for k, x in c.median.items() if k.startswith("RUN go build") and k.endswith(PROCESS)]
            return f"{v[0] - floor:+.3f} s | —" if v else "— | —"

        rows.append(f"| the `go build` process in the container over the local `go build` ({floor:.3f} s) | "
                    + " | ".join(compile_over(c) for c in columns) + " |")
        rows.append("| whole build over the local `go build` | "
                    + " | ".join(f"{c.wall - floor:+.3f} s | —" for c in columns) + " |")
    return "\n".join(rows) + "\n"
