"""bench/breakdown.py: scenario 3's build split into parts from BuildKit's own trace, in the shape
the daemon stores it (OTLP JSON spans, one after another, in a `docker-buildx history export`
bundle). The spans are made up here, in the format a real record has (tests/e2e/test_bench_smoke.py
reads real ones): these check the parsing and the arithmetic, never a timing."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import pytest

from bench import breakdown, report

GOBUILD = ("[build 2/2] RUN --mount=type=bind,source=goproxy,target=/goproxy "
           "--mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build     "
           'go build -trimpath -ldflags "-s -w" -o /out/app ./cmd/registry')


def span(name: str, start: float, end: float, vertex: str = "",
         events: dict[str, float] | None = None) -> dict[str, Any]:
    """One span as BuildKit writes it; times are seconds after 02:45:16 (nanosecond digits)."""
    def t(x: float) -> str:
        return f"2026-12-05T02:45:{16 + int(x):02d}.{round((x % 1) * 1e9):09d}Z"
    attrs = [{"Key": "vertex", "Value": {"Type": "STRING", "Value": vertex}}] if vertex else []
    return {"Name": name, "SpanContext": {"TraceID": "ab", "SpanID": "cd"}, "StartTime": t(start), "EndTime": t(end),
            "Attributes": attrs, "Events": [{"Name": k, "Time": t(v)} for k, v in (events or {}).items()] or None,
            "Status": {"Code": "Unset"}}


SPANS = [
    span("build", 0.020, 2.990),
    span("moby.buildkit.v1.Control/Solve", 0.021, 2.989),
    span("cache request: [internal] load build definition from Dockerfile", 0.030, 0.030, "sha256:1"),
    span("[internal] load build definition from Dockerfile", 0.030, 0.040, "sha256:1"),
    span("[internal] load .dockerignore", 0.045, 0.050, "sha256:2"),
    span("[internal] load build context", 0.060, 0.160, "sha256:3"),
    span("load cache: [deps 3/3] RUN go mod download", 0.170, 0.171, "sha256:4"),
    span("[build 1/2] COPY src/ ./", 0.171, 0.321, "sha256:5"),
    span(GOBUILD, 0.325, 2.425, "sha256:6", {"ExecOp started": 0.325, "Container created": 0.340,
                                              "Container started": 0.345, "Container exited": 2.345}),
    span("[stage-3 1/1] COPY --from=build /out/app /app", 2.465, 2.505, "sha256:7"),
    span("create provenance attestation", 2.506, 2.507),
    span("exporting to client directory", 2.507, 2.757),
    span("moby.filesync.v1.FileSend/DiffCopy", 2.508, 2.757),
    span("create history record", 2.757, 2.777),
]


def otlp(spans: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(s, indent=1) for s in spans) + "\n"


def bundle(trace: str | None) -> bytes:
    """A bundle in the layout `docker-buildx history export` writes: index -> manifest -> layers."""
    blobs: dict[str, bytes] = {}

    def add(data: bytes, digest: str) -> dict[str, Any]:
        blobs[f"blobs/sha256/{digest}"] = data
        return {"digest": f"sha256:{digest}", "size": len(data)}

    layers = [{"mediaType": "application/vnd.buildkit.status.v0", **add(b"\x00status", "5405")}]
    if trace is not None:
        layers.insert(0, {"mediaType": breakdown.OTLP_LAYER, **add(trace.encode(), "3ded")})
    manifest = {"schemaVersion": 2, "layers": layers,
                "config": {"mediaType": "application/vnd.buildkit.historyrecord.v0", **add(b"{}", "c327")}}
    index = {"schemaVersion": 2, "manifests": [add(json.dumps(manifest).encode(), "09e5")]}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": json.dumps(index).encode(),
                           **blobs}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_spans_read_every_object_of_the_stream_in_start_order_at_nanosecond_precision() -> None:
    s = breakdown.spans(otlp(list(reversed(SPANS))))
    assert len(s) == len(SPANS) and [x.name for x in s][:2] == ["build", "moby.buildkit.v1.Control/Solve"]
    assert [x.start for x in s] == sorted(x.start for x in s)
    run = next(x for x in s if x.vertex == "sha256:6")
    assert run.seconds == pytest.approx(2.1, abs=1e-6)
    assert run.events["Container exited"] - run.events["Container started"] == pytest.approx(2.0, abs=1e-6)
    assert breakdown._time("2026-12-05T02:45:16.000000001Z") - breakdown._time("2026-12-05T02:45:16Z") == \
        pytest.approx(1e-9, abs=1e-7)
    with pytest.raises(ValueError, match="not an RFC 3339 time"):
        breakdown._time("yesterday")


def test_bundle_trace_finds_the_otlp_layer_and_refuses_a_record_without_one() -> None:
    assert breakdown.bundle_trace(bundle(otlp(SPANS))) == otlp(SPANS)
    with pytest.raises(ValueError, match="no trace"):
        breakdown.bundle_trace(bundle(None))


def test_parts_split_the_run_at_its_container_events_and_sum_to_the_wall_time() -> None:
    p = breakdown.parts(3.1, breakdown.spans(otlp(SPANS)))
    assert p == {
        breakdown.FRONT_END: 0.015, breakdown.CONTEXT: 0.1, breakdown.OTHER: 0.19,
        "RUN go build -trimpath: start (mounts, container)": 0.02, "RUN go build -trimpath: the process": 2.0,
        "RUN go build -trimpath: after the process (unmounts, commit)": 0.08,
        breakdown.EXPORT: 0.251, breakdown.HISTORY: 0.02,
        breakdown.BETWEEN: pytest.approx(2.777 - 0.030 - 2.676, abs=0.002),  # the steps' gaps, the cache loads
        breakdown.OUTSIDE: pytest.approx(3.1 - (2.777 - 0.030), abs=0.001)}
    assert sum(p.values()) == pytest.approx(3.1, abs=0.002)
    with pytest.raises(ValueError, match="no build step"):
        breakdown.parts(1.0, breakdown.spans(otlp([span("build", 0, 1)])))


def test_a_run_without_container_events_counts_whole_under_other_steps() -> None:
    no_events = [s if s["Name"] != GOBUILD else {**s, "Events": None} for s in SPANS]
    p = breakdown.parts(3.1, breakdown.spans(otlp(no_events)))
    assert p[breakdown.OTHER] == pytest.approx(0.19 + 2.1, abs=0.001) and not any(k.startswith("RUN") for k in p)


def test_medians_over_runs_count_a_missing_part_as_zero() -> None:
    runs = [{"a": 1.0, "b": 2.0}, {"a": 3.0}, {"a": 2.0, "b": 4.0}]
    assert breakdown.median_parts(runs) == {"a": 2.0, "b": 2.0}


def test_table_shares_and_the_compile_over_the_local_floor() -> None:
    med = breakdown.parts(3.1, breakdown.spans(otlp(SPANS)))
    t = breakdown.table([breakdown.Column("3", 3.1, med)], 1.8)
    assert "| part of the farm's one-line-change build (median) | 3: seconds | share |" in t
    assert "| context transfer | 0.100 s | 3% |" in t
    assert "| RUN go build -trimpath: the process | 2.000 s | 65% |" in t
    assert "| whole build (wall, median) | 3.100 s | 100% |" in t
    assert "over the local `go build` (1.800 s) | +0.200 s |" in t  # the process over the floor
    assert "| whole build over the local `go build` | +1.300 s | — |" in t
    assert "over the local" not in breakdown.table([breakdown.Column("3", 3.1, med)], None)


def test_table_sets_a_second_scenario_beside_the_first_part_by_part() -> None:
    # 3b has no COPY of the source: its other steps are smaller, and a part only one has shows "—"
    three = {"context transfer": 0.1, "other steps (COPY, ADD)": 0.3, "RUN go build -trimpath: the process": 2.0}
    bind = {"context transfer": 0.1, "RUN go build -trimpath: the process": 2.0, "other steps (COPY, ADD)": 0.05,
            "only in 3b": 0.01}
    t = breakdown.table([breakdown.Column("3 (COPY)", 2.5, three), breakdown.Column("3b (bind mount)", 2.2, bind)],
                        1.8)
    lines = t.splitlines()
    assert lines[0] == ("| part of the farm's one-line-change build (median) | 3 (COPY): seconds | share "
                        "| 3b (bind mount): seconds | share |")
    assert lines[1] == "|---|---:|---:|---:|---:|"
    assert "| other steps (COPY, ADD) | 0.300 s | 12% | 0.050 s | 2% |" in lines
    assert "| only in 3b | — | — | 0.010 s | 0% |" in lines
    assert "| whole build (wall, median) | 2.500 s | 100% | 2.200 s | 100% |" in lines
    assert "| whole build over the local `go build` | +0.700 s | — | +0.400 s | — |" in lines
    assert all(ln.count("|") == 6 for ln in lines)  # every row has both columns
    with pytest.raises(ValueError):
        breakdown.table([], 1.8)


def test_report_carries_the_breakdown_into_json_and_the_readme_block() -> None:
    scn = {k: {"title": report.TITLES[k], "unit": "s", "samples": v}
           for k, v in {"s3_farm_change": [3.1, 3.0, 3.2], "s3_floor_local_go": [1.8, 1.8, 1.8]}.items()}
    runs = [breakdown.parts(3.1, breakdown.spans(otlp(SPANS))), breakdown.parts(3.0, breakdown.spans(otlp(SPANS)))]
    bd = report.breakdown_data(scn, runs)
    assert bd["wall_median"] == 3.1 and bd["floor_median"] == 1.8
    assert bd["median"]["context transfer"] == 0.1
    data = {"meta": {"date": "d", "machine": "m", "workload": "w", "runs": 3}, "scenarios": scn, "breakdown": bd}
    block = report.readme_block(data, "bench.png")
    assert "Where scenario 3's time goes" in block and "| whole build (wall, median) | 3.100 s | 100% |" in block
    assert report.breakdown_table({"breakdown": report.breakdown_data({}, [])}) == ""
    # with 3b's runs, its column stands beside 3's, from its own wall time
    scn["s3b_farm_change_bind_source"] = {"title": "3b", "unit": "s", "samples": [2.9, 2.8, 3.0]}
    bd = report.breakdown_data(scn, runs, runs[:1])
    assert bd["bind"]["wall_median"] == 2.9 and bd["bind"]["median"] == runs[0]
    t = report.breakdown_table({"breakdown": bd})
    assert "| 3 (COPY): seconds | share | 3b (bind mount): seconds | share |" in t
    assert "| whole build (wall, median) | 3.100 s | 100% | 2.900 s | 100% |" in t
