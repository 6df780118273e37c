"""Build insights from the nodes' own build history (pure: records in, figures out).

Every buildkitd keeps a history of its builds; ``buildctl debug histories --format json`` prints one
JSON object per line, ``{"type": ..., "record": {...}}``, with the build's ``Ref``, ``CreatedAt`` /
``CompletedAt``, ``numTotalSteps`` / ``numCachedSteps`` / ``numCompletedSteps`` (protobuf leaves out
zeros), an ``error`` when it failed, and the frontend attributes buildx sends, among them
``vcs:source`` and ``vcs:revision`` for a build from a git checkout.

What is counted:
- a build is one record; a record without ``CompletedAt`` is still running and is left out of the
  figures (it is reported as running);
- the same ``Ref`` read from two nodes is one build (the first node in farm order keeps it), so
  nothing is counted twice;
- the cache hit ratio is cached steps / total steps, summed over the group's builds;
- time saved by the cache (an estimate, method stated so a reader can judge it): per repository,
  the median duration of its successful builds that had no cached step is its cold time; each
  successful build saved ``max(0, cold - duration)``. A repository with no cold build in the window
  contributes nothing (the estimate is a lower bound).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

GroupBy = Literal["repo", "node", "day"]
GROUPS: tuple[GroupBy, ...] = ("repo", "node", "day")
#: the name a build without any source attribute is grouped under
UNKNOWN_REPO = "(no vcs:source)"


@dataclass(frozen=True)
class Build:
    node: str
    ref: str
    repo: str
    revision: str
    started: float
    #: None while the build runs
    ended: float | None
    failed: bool
    total_steps: int
    cached_steps: int

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else max(0.0, self.ended - self.started)

    @property
    def day(self) -> str:
        return dt.datetime.fromtimestamp(self.started, dt.UTC).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Row:
    key: str
    builds: int
    failures: int
    p50_s: float | None
    p95_s: float | None
    cached_steps: int
    total_steps: int
    saved_s: float

    @property
    def hit_ratio(self) -> float | None:
        return self.cached_steps / self.total_steps if self.total_steps else None


def parse_histories(text: str) -> list[dict[str, Any]]:
    """The records of ``buildctl debug histories --format json`` output (JSON lines)."""
    out: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"history line {n} is not JSON ({e.msg}): {line[:80]!r}") from None
        record = event.get("record") if isinstance(event, dict) else None
        if isinstance(record, dict):
            out.append(record)
    return out


def _ts(value: Any) -> float | None:
    if not isinstance(value, Mapping) or "seconds" not in value:
        return None
    return int(value["seconds"]) + int(value.get("nanos", 0)) / 1e9


_CREDENTIALS = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@]*@", re.I)


def repository(attrs: Mapping[str, str], fallback: str = "") -> str:
    """The repository a build came from: its ``vcs:source`` without credentials or ``.git``, else the
    fallback (the affinity key or the context name the caller knows), else UNKNOWN_REPO."""
    source = attrs.get("vcs:source", "")
    if source:
        source = _CREDENTIALS.sub(r"\g<scheme>", source)
        return source.removesuffix("/").removesuffix(".git")
    return fallback or UNKNOWN_REPO


def builds(node: str, records: Iterable[Mapping[str, Any]]) -> list[Build]:
    out: list[Build] = []
    for r in records:
        started = _ts(r.get("CreatedAt"))
        if started is None or not r.get("Ref"):
            continue
        attrs = r.get("FrontendAttrs") or {}
        out.append(Build(
            node=node, ref=str(r["Ref"]), repo=repository(attrs), revision=attrs.get("vcs:revision", ""),
            started=started, ended=_ts(r.get("CompletedAt")), failed=bool(r.get("error")),
            total_steps=int(r.get("numTotalSteps", 0)), cached_steps=int(r.get("numCachedSteps", 0))))
    return out


def merge(per_node: Sequence[tuple[str, Iterable[Mapping[str, Any]]]]) -> list[Build]:
    """Every node's builds, each Ref once (the first node in the given order keeps it)."""
    seen: set[str] = set()
    out: list[Build] = []
    for node, records in per_node:
        for b in builds(node, records):
            if b.ref not in seen:
                seen.add(b.ref)
                out.append(b)
    return out


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100): a value that was really seen, no interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def cold_times(done: Iterable[Build]) -> dict[str, float]:
    """Per repository, the median duration of its successful builds that had no cached step."""
    cold: dict[str, list[float]] = {}
    for b in done:
        if not b.failed and b.cached_steps == 0 and b.duration is not None:
            cold.setdefault(b.repo, []).append(b.duration)
    return {repo: statistics.median(d) for repo, d in cold.items()}


def report(all_builds: Sequence[Build], by: GroupBy) -> list[Row]:
    """One row per repository, node or day (most builds first), over the finished builds."""
    done = [b for b in all_builds if b.ended is not None]
    cold = cold_times(done)
    groups: dict[str, list[Build]] = {}
    for b in done:
        key = b.repo if by == "repo" else b.node if by == "node" else b.day
        groups.setdefault(key, []).append(b)
    rows = []
    for key, bs in groups.items():
        durations = [b.duration for b in bs if b.duration is not None]
        saved = sum(max(0.0, cold[b.repo] - b.duration) for b in bs
                    if not b.failed and b.repo in cold and b.duration is not None)
        rows.append(Row(key=key, builds=len(bs), failures=sum(b.failed for b in bs),
                        p50_s=percentile(durations, 50), p95_s=percentile(durations, 95),
                        cached_steps=sum(b.cached_steps for b in bs), total_steps=sum(b.total_steps for b in bs),
                        saved_s=saved))
    return sorted(rows, key=lambda r: (-r.builds, r.key))
