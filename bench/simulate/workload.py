"""A CI day's builds for one platform: repositories with Zipf-distributed push rates, a work-day
profile with morning and afternoon peaks, pushes that start several builds of one repository at
once (a matrix of images or targets), and per-build cold and warm times.

Every build carries both its cold and its warm time, drawn up front: the policies then differ
only in where builds go (common random numbers), not in the luck of the draws.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

from bench.simulate.calibration import Calibration

DAY = 24 * 3600.0

# Relative push rate per hour of the day (0-23): quiet night, a morning peak, a lunch dip, an
# afternoon peak, an evening tail. Assumed, not measured.
HOURLY = (0.04, 0.03, 0.03, 0.03, 0.03, 0.05, 0.10, 0.30, 0.70, 1.00, 1.00, 0.85,
          0.50, 0.75, 1.00, 1.00, 0.90, 0.60, 0.35, 0.20, 0.12, 0.08, 0.06, 0.05)


@dataclass(frozen=True)
class Workload:
    repos: int = 200
    zipf_s: float = 1.1  # push rate of the k-th busiest repository ~ 1 / k**s
    builds_per_node: float = 400.0  # a day's builds per node: the farm is sized to its load
    matrix_p: float = 0.5  # builds per push: geometric with this p (mean 1/p), capped
    matrix_max: int = 6
    matrix_spread_s: float = 20.0  # a push's builds arrive within this many seconds
    size_sigma: float = 0.5  # repositories differ in size: a log-normal factor on both times


@dataclass(frozen=True)
class Build:
    arrival: float  # seconds since midnight
    repo: str
    cold: float  # seconds on a node whose cache does not hold the repository
    warm: float  # seconds on a node whose cache does


def zipf_weights(n: int, s: float) -> list[float]:
    return [1 / k**s for k in range(1, n + 1)]


def day(nodes: int, cal: Calibration, w: Workload = Workload(), seed: int = 1) -> list[Build]:
    """The day's builds in arrival order, for a platform of `nodes` nodes."""
    rng = random.Random(f"workload:{seed}:{nodes}")
    repos = [f"repo-{k:03d}" for k in range(1, w.repos + 1)]
    size = {r: math.exp(rng.gauss(0, w.size_sigma)) for r in repos}
    cum = list(itertools.accumulate(zipf_weights(w.repos, w.zipf_s)))
    mean_matrix = _mean_matrix(w.matrix_p, w.matrix_max)
    pushes_per_day = nodes * w.builds_per_node / mean_matrix
    per_weight = pushes_per_day / sum(HOURLY)  # pushes in an hour of weight 1
    builds: list[Build] = []
    for hour, weight in enumerate(HOURLY):
        rate = per_weight * weight / 3600  # pushes per second, constant within the hour
        t = hour * 3600.0
        while True:
            t += rng.expovariate(rate)
            if t >= (hour + 1) * 3600:
                break
            repo = rng.choices(repos, cum_weights=cum)[0]
            for _ in range(_matrix(rng, w.matrix_p, w.matrix_max)):
                builds.append(Build(
                    arrival=t + rng.uniform(0, w.matrix_spread_s), repo=repo,
                    cold=size[repo] * cal.cold.median * math.exp(rng.gauss(0, cal.cold.sigma)),
                    warm=size[repo] * cal.warm.median * math.exp(rng.gauss(0, cal.warm.sigma))))
    builds.sort(key=lambda b: (b.arrival, b.repo))
    return builds


def _matrix(rng: random.Random, p: float, cap: int) -> int:
    n = 1
    while n < cap and rng.random() > p:
        n += 1
    return n


def _mean_matrix(p: float, cap: int) -> float:
    # P(n = k) = (1-p)**(k-1) * p for k < cap, the rest of the mass on cap
    return sum(k * (1 - p) ** (k - 1) * p for k in range(1, cap)) + cap * (1 - p) ** (cap - 1)

