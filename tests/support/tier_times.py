"""Time per stage and tier of a whole `make test`, printed once at its end (issue 23: the budget is
read from it).

scripts/test.sh runs its stages in more than one process (lint and types beside the unit tier,
then the heavy tiers in two lanes side by side), so no single pytest sees the whole run: each
pytest adds its tiers to the JSON file named by BKF_TIER_TIMES (tests/conftest.py), the script adds
the stages it timed itself (`add FILE NAME SECONDS`), and `print FILE WALL` prints the table. The
wall time is printed beside the sum: stages that ran side by side make the sum larger than the wait.
"""

from __future__ import annotations

import fcntl
import json
import sys
from collections.abc import Mapping
from pathlib import Path

#: the env var naming the run's file (unset: a plain `pytest` run records nothing)
ENV = "BKF_TIER_TIMES"


def merged(old: Mapping[str, list[float]], seconds: Mapping[str, float],
           tests: Mapping[str, int]) -> dict[str, list[float]]:
    """``old`` with each tier's seconds and test count added: name -> [seconds, tests]."""
    out = {k: [float(v[0]), float(v[1])] for k, v in old.items()}
    for tier, s in seconds.items():
        row = out.setdefault(tier, [0.0, 0.0])
        row[0] += s
        row[1] += tests.get(tier, 0)
    return out


def add(path: Path, seconds: Mapping[str, float], tests: Mapping[str, int]) -> None:
    """Add tiers to the run's file (made if missing). The heavy tiers' two pytest processes may end
    at the same moment: each read-modify-write holds an exclusive lock on the file beside it."""
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = json.loads(path.read_text()) if path.exists() and path.stat().st_size else {}
        path.write_text(json.dumps(merged(old, seconds, tests), indent=1) + "\n")


def table(rows: Mapping[str, list[float]], wall: float | None = None) -> str:
    """The rows, longest first; a stage without tests (lint, types) shows no count."""
    lines = []
    for name, (seconds, tests) in sorted(rows.items(), key=lambda kv: -kv[1][0]):
        count = f"{int(tests):4d} tests" if tests else ""
        lines.append(f"{name:<14} {seconds:8.1f} s  {count}".rstrip())
    lines.append(f"{'sum':<14} {sum(r[0] for r in rows.values()):8.1f} s")
    if wall is not None:
        lines.append(f"{'wall':<14} {wall:8.1f} s  (stages side by side count once)")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """`add FILE NAME SECONDS`: a stage the script timed; `print FILE [WALL_SECONDS]`: the table."""
    if len(argv) == 4 and argv[0] == "add":
        add(Path(argv[1]), {argv[2]: float(argv[3])}, {})
        return 0
    if len(argv) in (2, 3) and argv[0] == "print":
        path = Path(argv[1])
        rows = json.loads(path.read_text()) if path.exists() and path.stat().st_size else {}
        print(table(rows, float(argv[2]) if len(argv) == 3 else None))
        return 0
    print("usage: python -m tests.support.tier_times add FILE NAME SECONDS | print FILE [WALL_SECONDS]",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
