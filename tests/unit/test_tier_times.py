"""make test's closing table (tests/support/tier_times.py): tiers from several pytest processes and
the script's own stages add up in one file, and the table prints them with the sum and the wall time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.hosts import ROOT
from tests.support import tier_times


def test_two_processes_and_the_scripts_stages_add_up_in_one_file(tmp_path: Path) -> None:
    f = tmp_path / "times.json"
    # the unit pytest, then the heavy one (a tier both ran, as `tests` would if asked twice, adds up)
    tier_times.add(f, {"unit": 70.0, "toolchain": 8.5}, {"unit": 650, "toolchain": 41})
    tier_times.add(f, {"e2e": 600.25, "unit": 1.0}, {"e2e": 60, "unit": 2})
    # the script's stages, through the command line it uses
    for name, s in (("lint", "30.5"), ("types", "41")):
        subprocess.run([sys.executable, "-m", "tests.support.tier_times", "add", str(f), name, s], cwd=ROOT,
                       check=True)
    out = subprocess.run([sys.executable, "-m", "tests.support.tier_times", "print", str(f), "700"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout.splitlines()
    assert out == [
        "e2e               600.2 s    60 tests",
        "unit               71.0 s   652 tests",
        "types              41.0 s",
        "lint               30.5 s",
        "toolchain           8.5 s    41 tests",
        "sum               751.2 s",
        "wall              700.0 s  (stages side by side count once)",
    ]


def test_no_file_yet_is_an_empty_table_and_a_bad_call_is_refused(tmp_path: Path) -> None:
    assert tier_times.table({}) == "sum                 0.0 s"
    assert tier_times.main(["print", str(tmp_path / "none.json")]) == 0
    assert tier_times.main(["add", str(tmp_path / "x.json"), "lint"]) == 2
    assert not (tmp_path / "x.json").exists()


ADDER = """
import sys
from pathlib import Path
from tests.support import tier_times
for _ in range(40):
    tier_times.add(Path(sys.argv[1]), {sys.argv[2]: 1.0}, {sys.argv[2]: 1})
"""


def test_processes_adding_at_the_same_time_lose_nothing(tmp_path: Path) -> None:
    # the heavy tiers' two lanes end when they end: their adds may meet (scripts/test.sh)
    f = tmp_path / "times.json"
    procs = [subprocess.Popen([sys.executable, "-c", ADDER, str(f), f"lane{i}"], cwd=ROOT) for i in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0] * 4
    rows = json.loads(f.read_text())
    assert rows == {f"lane{i}": [40.0, 40.0] for i in range(4)}
