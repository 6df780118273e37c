"""Counts and figures of the reliability suite.

One knob picks the counts: BKF_RELIABILITY=full (``make reliability``) runs the full ones, anything
else the reduced ones ``make test`` runs. Tests record what they saw here; conftest prints the table
at the end of the run (and writes it to BKF_RELIABILITY_TABLE when that names a file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

FULL = os.environ.get("BKF_RELIABILITY") == "full"
#: kill -9 of buildkitd in the middle of a build
KILLS = 20 if FULL else 3
#: pulumi up/destroy cycles through the real program
CYCLES = 20 if FULL else 2
#: concurrent builds against one node (the issue's figure, in both runs)
CONCURRENT = 16


@dataclass(frozen=True)
class Row:
    check: str
    figure: str


ROWS: list[Row] = []


def record(check: str, figure: str) -> None:
    ROWS.append(Row(check, figure))


def ratio(ok: int, total: int) -> str:
    return f"{ok}/{total}"


def table() -> str:
    width = max([len(r.check) for r in ROWS] + [5])
    lines = [f"| {'check':<{width}} | figure |", f"|{'-' * (width + 2)}|--------|"]
    lines += [f"| {r.check:<{width}} | {r.figure} |" for r in ROWS]
    return "\n".join(lines)
