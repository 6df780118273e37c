"""The sweep's figures per (policy, nodes): cache hit ratio, build time including queueing, and how
evenly the nodes were used; printed as a table, written as JSON, a markdown table and a chart."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.simulate.engine import Run


@dataclass(frozen=True)
class Metrics:
    policy: str
    nodes: int
    builds: int
    hit_ratio: float  # warm builds / all builds
    p50_s: float  # build time from arrival to finish (queueing included)
    p95_s: float
    wait_p95_s: float  # time in a node's queue before a slot was free
    busy_max_over_mean: float  # the busiest node's slot time over the mean node's
    busy_cv: float  # coefficient of variation of the nodes' slot time


def metrics(policy: str, nodes: int, run: Run) -> Metrics:
    took = [o.finish - o.build.arrival for o in run.outcomes]
    waits = [o.start - o.build.arrival for o in run.outcomes]
    busy = list(run.busy.values())
    mean = statistics.fmean(busy)
    return Metrics(
        policy=policy, nodes=nodes, builds=len(took),
        hit_ratio=sum(o.warm for o in run.outcomes) / len(took),
        p50_s=_percentile(took, 50), p95_s=_percentile(took, 95), wait_p95_s=_percentile(waits, 95),
        busy_max_over_mean=max(busy) / mean if mean else 1.0,
        busy_cv=statistics.pstdev(busy) / mean if mean else 0.0)


def _percentile(xs: Sequence[float], p: int) -> float:
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(xs, n=100, method="inclusive")[p - 1]


HEADER = ("policy", "nodes", "builds", "cache hits", "p50 s", "p95 s", "queue p95 s", "busy max/mean", "busy CV")


def _cells(m: Metrics) -> tuple[str, ...]:
    return (m.policy, str(m.nodes), str(m.builds), f"{m.hit_ratio:.1%}", _secs(m.p50_s), _secs(m.p95_s),
            _secs(m.wait_p95_s), f"{m.busy_max_over_mean:.2f}", f"{m.busy_cv:.2f}")


def _secs(s: float) -> str:
    return f"{s:,.0f}" if s >= 100 else f"{s:.1f}"


def table(rows: Sequence[Metrics]) -> str:
    cells = [HEADER, *(_cells(m) for m in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def markdown_table(rows: Sequence[Metrics]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(["---"] + ["---:"] * (len(HEADER) - 1)) + "|"]
    out += ["| " + " | ".join(_cells(m)) + " |" for m in rows]
    return "\n".join(out)


def winners(rows: Sequence[Metrics]) -> str:
    """Per node count, the policy with the most cache hits, the lowest p95 and the most even nodes
    (ties: all of them), as a markdown table."""
    out = ["| nodes | most cache hits | lowest p95 | most even (busy max/mean) |", "|---:|---|---|---|"]
    for n in sorted({m.nodes for m in rows}):
        ms = [m for m in rows if m.nodes == n]
        cols = [_best(ms, lambda m: -m.hit_ratio, lambda m: f"{m.hit_ratio:.1%}"),
                _best(ms, lambda m: m.p95_s, lambda m: f"{_secs(m.p95_s)} s"),
                _best(ms, lambda m: m.busy_max_over_mean, lambda m: f"{m.busy_max_over_mean:.2f}")]
        out.append(f"| {n} | " + " | ".join(cols) + " |")
    return "\n".join(out)


def _best(ms: Sequence[Metrics], key: Callable[[Metrics], float], show: Callable[[Metrics], str]) -> str:
    # equal to the shown precision counts as a tie
    top = show(min(ms, key=key))
    return ", ".join(m.policy for m in ms if show(m) == top) + f" ({top})"


def chart(rows: Sequence[Metrics], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = list(dict.fromkeys(m.policy for m in rows))
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    panels = [("cache hit ratio", lambda m: m.hit_ratio, "linear"),
              ("p95 build time incl. queueing (s, log)", lambda m: m.p95_s, "log"),
              ("busiest node's slot time / mean", lambda m: m.busy_max_over_mean, "log")]
    for ax, (title, value, scale) in zip(axes, panels, strict=True):
        for p in policies:
            ms = sorted((m for m in rows if m.policy == p), key=lambda m: m.nodes)
            ax.plot([m.nodes for m in ms], [value(m) for m in ms], marker="o", label=p)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({m.nodes for m in rows}), [str(n) for n in sorted({m.nodes for m in rows})])
        ax.set_yscale(scale)
        ax.set_xlabel("nodes per platform")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Placement policies over a simulated CI day (bench/simulate)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
