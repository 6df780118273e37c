"""bench/breakdown.py: scenario 3's build split into BuildKit's own per-step times, from a
`--progress plain` log of the shape buildx prints (made up here: these check the parsing and the
arithmetic, never a timing)."""

from __future__ import annotations

import pytest

from bench import breakdown, report

MOUNTS = "--mount=type=bind,source=goproxy,target=/goproxy --mount=type=cache,target=/root/go/pkg/mod"
# one line in the log (the Dockerfile's continuation lines joined), as buildx prints a vertex's name
GOBUILD = ('--mount=type=cache,target=/root/.cache/go-build     '
           'go build -trimpath -ldflags "-s -w" -o /out/app ./cmd/registry')
LOG = f"""\
#0 building with "bkf-bench" instance using remote driver

#1 [internal] load build definition from Dockerfile
#1 transferring dockerfile: 1.02kB done
#1 DONE 0.1s

#2 [internal] load .dockerignore
#2 transferring context: 2B done
#2 DONE 0.0s

#3 [internal] load build context
#3 transferring context: 12.30kB 0.2s done
#3 DONE 0.3s

#4 [go 1/1] ADD toolchain-amd64.tar /
#4 CACHED

#5 [deps 3/3] RUN {MOUNTS}     go mod download
#5 CACHED

#6 [build 1/2] COPY src/ ./
#6 DONE 0.2s

#7 [build 2/2] RUN {MOUNTS} {GOBUILD}
#7 0.512 compiling
#7 DONE 4.5s

#8 [stage-3 1/1] COPY --from=build /out/app /app
#8 DONE 0.1s

#9 exporting to client directory
#9 copying files 12.34MB 0.3s done
#9 DONE 0.4s
"""


def test_steps_read_every_vertex_with_its_done_time_and_cached_ones_as_zero() -> None:
    s = breakdown.steps(LOG)
    assert [x.name.split()[0] for x in s] == ["[internal]", "[internal]", "[internal]", "[go", "[deps", "[build",
                                              "[build", "[stage-3", "exporting"]
    assert [x.seconds for x in s] == [0.1, 0.0, 0.3, 0.0, 0.0, 0.2, 4.5, 0.1, 0.4]
    assert [x.cached for x in s] == [False, False, False, True, True, False, False, False, False]
    assert s[6].name.endswith("./cmd/registry")  # the header, not the progress line "0.512 compiling"


def test_parts_sum_to_the_wall_time_with_the_rest_outside_every_step() -> None:
    p = breakdown.parts(6.0, LOG)
    assert p == {"front end (Dockerfile, .dockerignore, metadata)": 0.1, "context transfer": 0.3,
                 "other steps (COPY, ADD)": 0.3, "RUN go mod download": 0.0,
                 "RUN go build -trimpath": 4.5, "export": 0.4, breakdown.OUTSIDE: pytest.approx(0.4)}
    assert sum(p.values()) == pytest.approx(6.0)


def test_medians_over_runs_count_a_missing_part_as_zero() -> None:
    runs = [{"a": 1.0, "b": 2.0}, {"a": 3.0}, {"a": 2.0, "b": 4.0}]
    assert breakdown.median_parts(runs) == {"a": 2.0, "b": 2.0}


def test_table_shares_and_the_compile_over_the_local_floor() -> None:
    med = breakdown.parts(6.0, LOG)
    t = breakdown.table(6.0, med, 4.0)
    assert "| context transfer | 0.300 s | 5% |" in t
    assert "| RUN go build -trimpath | 4.500 s | 75% |" in t
    assert "| whole build (wall, median) | 6.000 s | 100% |" in t
    assert "local `go build` (4.000 s)" in t and "| +0.500 s |" in t  # the RUN over the floor
    assert "| whole build over the local `go build` | +2.000 s | — |" in t
    assert "over the local" not in breakdown.table(6.0, med, None)


def test_report_carries_the_breakdown_into_json_and_the_readme_block() -> None:
    scn = {k: {"title": report.TITLES[k], "unit": "s", "samples": v}
           for k, v in {"s3_farm_change": [6.0, 5.0, 7.0], "s3_floor_local_go": [4.0, 4.0, 4.0]}.items()}
    runs = [breakdown.parts(6.0, LOG), breakdown.parts(5.0, LOG)]
    bd = report.breakdown_data(scn, runs)
    assert bd["wall_median"] == 6.0 and bd["floor_median"] == 4.0
    assert bd["median"]["context transfer"] == 0.3
    data = {"meta": {"date": "d", "machine": "m", "workload": "w", "runs": 3}, "scenarios": scn, "breakdown": bd}
    block = report.readme_block(data, "bench.png")
    assert "Where scenario 3's time goes" in block and "| whole build (wall, median) | 6.000 s | 100% |" in block
    assert report.breakdown_table({"breakdown": report.breakdown_data({}, [])}) == ""
