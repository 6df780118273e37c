"""`bkf insights`: every node's build history over the farm's mTLS, as components.insights figures."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.table import Table

from bkf.errors import UserError
from components.insights import Build, GroupBy, Row, merge, parse_histories
from components.status import Tls, _buildctl


def read_histories(node: dict[str, str], tls: Tls, timeout: float) -> list[dict[str, Any]] | str:
    """The node's history records, or the error that kept us from reading them."""
    try:
        out = _buildctl(node, tls, "--timeout", str(int(timeout)), "debug", "histories", "--format", "json",
                        timeout=timeout + 5)
        return parse_histories(out)
    except subprocess.TimeoutExpired:
        return f"no answer in {timeout:.0f} s"
    except (RuntimeError, ValueError) as e:
        return str(e)


def collect(nodes: Sequence[dict[str, str]], tls: Tls, timeout: float) -> tuple[list[Build], dict[str, str]]:
    """Every build once (farm order decides which node keeps a Ref), and node -> error for the
    nodes that could not be read."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda n: read_histories(n, tls, timeout), nodes))
    errors = {n["name"]: a for n, a in zip(nodes, answers, strict=True) if isinstance(a, str)}
    read = [(n["name"], a) for n, a in zip(nodes, answers, strict=True) if not isinstance(a, str)]
    return merge(read), errors


def _seconds(s: float | None) -> str:
    return "-" if s is None else f"{s:.1f} s"


def table(rows: Sequence[Row], by: GroupBy) -> Table:
    t = Table(by.upper(), "BUILDS", "FAILED", "P50", "P95", "CACHED/TOTAL STEPS", "HIT", "SAVED",
              box=None, pad_edge=False, show_edge=False, header_style="bold")
    for r in rows:
        hit = "-" if r.hit_ratio is None else f"{r.hit_ratio:.0%}"
        t.add_row(r.key, str(r.builds), str(r.failures), _seconds(r.p50_s), _seconds(r.p95_s),
                  f"{r.cached_steps}/{r.total_steps}", hit, _seconds(r.saved_s))
    return t


def as_json(rows: Sequence[Row], by: GroupBy, nodes: Mapping[str, str]) -> dict[str, Any]:
    return {"by": by, "nodes": dict(nodes), "rows": [
        {"key": r.key, "builds": r.builds, "failures": r.failures, "p50_s": r.p50_s, "p95_s": r.p95_s,
         "cached_steps": r.cached_steps, "total_steps": r.total_steps, "hit_ratio": r.hit_ratio,
         "saved_s": r.saved_s} for r in rows]}


def chart(rows: Sequence[Row], by: GroupBy, path: Path) -> None:
    """Builds (failed ones apart) and the cache hit ratio per group, as a PNG for a weekly report."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("--chart needs matplotlib: pip install matplotlib") from None
    keys = [r.key for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(keys)), 4))
    ok = [r.builds - r.failures for r in rows]
    ax.bar(keys, ok, label="succeeded")
    ax.bar(keys, [r.failures for r in rows], bottom=ok, label="failed")
    ax.set_ylabel("builds")
    ax.set_title(f"Builds and cache hits per {by}")
    hits = ax.twinx()
    hits.plot(keys, [100 * (r.hit_ratio or 0) for r in rows], "ko-", label="cache hit %")
    hits.set_ylim(0, 100)
    hits.set_ylabel("cached steps / total (%)")
    ax.legend(loc="upper left")
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    try:
        fig.savefig(path, format="png")
    except OSError as e:
        raise UserError(f"cannot write the chart: {e.strerror}: {path}") from None
    finally:
        plt.close(fig)
