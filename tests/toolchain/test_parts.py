"""toolchain/bootstrap.sh PART...: which parts a run builds (make farm asks for `farm` only)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def parts(*args: str) -> subprocess.CompletedProcess[str]:
    # The real selection code, sourced the way bootstrap.sh sources it.
    script = 'source toolchain/lib/common.sh; select_parts "$@"; ' \
             'for p in farm test cluster; do if want "$p"; then printf "%s " "$p"; fi; done'
    return subprocess.run(["bash", "-c", script, "parts", *args], cwd=ROOT, text=True, capture_output=True,
                          check=False)


@pytest.mark.parametrize(("args", "wanted"), [
    ((), "farm test cluster"),
    (("all",), "farm test cluster"),
    (("farm",), "farm"),
    (("test",), "farm test"),
    (("cluster",), "farm cluster"),
    (("farm", "cluster"), "farm cluster"),
])
def test_a_run_builds_exactly_the_parts_asked_for(args: tuple[str, ...], wanted: str) -> None:
    r = parts(*args)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == wanted.split()


def test_an_unknown_part_is_refused_with_what_is_allowed() -> None:
    r = subprocess.run(["bash", "toolchain/bootstrap.sh", "farms"], cwd=ROOT, text=True, capture_output=True,
                       check=False, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip() == "bootstrap.sh: unknown part farms (allowed: farm, test, cluster, all)"
    assert r.stdout == ""  # refused before any step ran


def test_make_farm_asks_for_the_farm_part_only() -> None:
    out = subprocess.run(["make", "-n", "farm"], cwd=ROOT, text=True, capture_output=True, check=True).stdout
    assert "bash toolchain/bootstrap.sh farm\n" in out
    assert "bootstrap.sh all" not in out
