"""Cold and warm build times from `make bench`'s measured figures (docs/bench/bench.json).

Cold: scenario s1_ephemeral_full (an empty builder, the full build of the bench workload): what
a build costs on a node whose cache does not hold its repository. Warm: s3_farm_change (the
farm with a warm cache, a one-line change): what a CI build of a pushed commit costs on the
node that built the repository before. Each is modelled as log-normal, with the median and the
spread (the standard deviation of the log samples) of the measured samples.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_JSON = Path(__file__).resolve().parents[2] / "docs" / "bench" / "bench.json"
COLD, WARM = "s1_ephemeral_full", "s3_farm_change"


@dataclass(frozen=True)
class LogNormal:
    median: float  # seconds
    sigma: float  # standard deviation of ln(seconds)


@dataclass(frozen=True)
class Calibration:
    cold: LogNormal
    warm: LogNormal
    source: str  # where the figures came from, for the report


def fit(samples: list[float]) -> LogNormal:
    if len(samples) < 2 or min(samples) <= 0:
        raise ValueError(f"need at least two positive samples, got {samples}")
    logs = [math.log(s) for s in samples]
    return LogNormal(median=statistics.median(samples), sigma=statistics.stdev(logs))


def from_bench(raw: dict[str, Any], source: str = "bench.json") -> Calibration:
    scenarios = raw["scenarios"]
    missing = [k for k in (COLD, WARM) if not scenarios.get(k, {}).get("samples")]
    if missing:
        raise ValueError(f"{source} has no samples for {', '.join(missing)}")
    date = raw.get("meta", {}).get("date", "undated")
    return Calibration(cold=fit(scenarios[COLD]["samples"]), warm=fit(scenarios[WARM]["samples"]),
                       source=f"{source} ({date})")


def load(path: Path = BENCH_JSON) -> Calibration:
    return from_bench(json.loads(path.read_text()), source=str(path.relative_to(path.parents[2])))
