"""bench/workload.py's Dockerfiles: the shapes the scenarios build (the builds themselves run in the
bench, and in its smoke run in tests/e2e/test_bench_smoke.py)."""

from __future__ import annotations

import typing

from bench import workload


def steps(dockerfile: str) -> list[str]:
    """The instructions, continuation lines joined."""
    return [ln for ln in dockerfile.replace("\\\n", "").splitlines() if ln and not ln.startswith("#")]


def test_the_copy_shape_copies_the_source_then_builds() -> None:
    s = steps(workload.dockerfile("cmd/registry"))
    build = s.index("FROM deps AS build")
    assert s[build + 1] == "COPY src/ ./"
    assert not any("source=src" in x for x in s)
    assert s[build + 2].startswith("RUN --mount=type=bind,source=goproxy,target=/goproxy ")
    assert s[build + 2].endswith("go build -trimpath -ldflags \"-s -w\" -o /out/app ./cmd/registry")


def test_the_bind_shape_mounts_the_source_over_the_workdir_and_copies_nothing_of_it() -> None:
    copy, bind = steps(workload.dockerfile("cmd/registry")), steps(workload.dockerfile("cmd/registry", source="bind"))
    assert "COPY src/ ./" not in bind
    assert "WORKDIR /src" in bind  # the mount's target is the working directory the build runs in
    build = bind.index("FROM deps AS build")
    assert bind[build + 1].startswith("RUN --mount=type=bind,source=src,target=/src --mount=type=bind,source=goproxy")
    # the same build otherwise: the same cache mounts and command, every other step the same
    assert bind[build + 1].removeprefix("RUN --mount=type=bind,source=src,target=/src ") == copy[build + 2]\
        .removeprefix("RUN ")
    assert [x for x in copy if x != "COPY src/ ./" and "go build" not in x] == [x for x in bind if "go build" not in x]


def test_without_cache_mounts_either_shape_has_none() -> None:
    for source in typing.get_args(workload.Source):
        d = workload.dockerfile("cmd/registry", cache_mounts=False, source=source)
        assert "type=cache" not in d and "go build -trimpath" in d
