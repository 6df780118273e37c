"""steps/venv.sh: the venv is made in the background beside the Go builds (venv_begin right after the
go step, step_venv waits for it and writes its table row). Runs the real library and step with a
stand-in interpreter (`-m venv` makes bin/python and bin/bkf; `-m pip` waits, then succeeds or fails
as told), so what is checked is the step's own logic: it runs beside, it reports, it fails in one
line with pip's error, and a script that ends early stops it and removes its temp dir."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PYTHON = """\
#!/bin/bash
if [[ $1 == -m && $2 == venv ]]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && printf '#!/bin/sh\\n' >"$3/bin/bkf" && chmod +x "$3/bin/bkf"
  exit
fi
if [[ $1 == -m && $2 == pip && " $* " == *" -r "* ]]; then
  echo "pip $(date +%s.%N)" >>"$T/trace"
  if [[ -n "${PIP_FAIL:-}" ]]; then echo "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES" >&2; exit 1; fi
  trap 'kill "$s"; exit 143' TERM
  sleep "$PIP_SLEEP" &
  s=$!
  wait "$s"
  echo "pip done" >>"$T/trace"
fi
exit 0
"""

DRIVER = """\
set -euo pipefail
source "$REPO/toolchain/lib/common.sh"
source "$REPO/toolchain/steps/venv.sh"
REPO_ROOT=$T/repo VENV_DIR=$T/repo/.venv PYTHON=$T/python CACHE_ROOT=$T/cache
trap cleanup EXIT
if [[ -z "${NO_BEGIN:-}" ]]; then venv_begin; fi
echo "builds $(date +%s.%N)"
if [[ -n "${EXIT_EARLY:-}" ]]; then until [[ -e $T/trace ]]; do sleep 0.05; done; sleep 0.2; exit 3; fi
sleep 1
step_venv
echo "row: ${STEP_RESULTS[0]}"
echo "failures: ${#FAILURES[@]}"
"""


def run(t: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(t / "driver.sh")], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "REPO": str(ROOT), "T": str(t), "PIP_SLEEP": "2", **env})


def setup(t: Path) -> None:
    (t / "driver.sh").write_text(DRIVER)
    (t / "python").write_text(PYTHON)
    (t / "python").chmod(0o755)
    (t / "repo").mkdir()
    (t / "repo" / "requirements-dev.txt").write_text("a==1 \\\n    --hash=sha256:00\nb==2 \\\n    --hash=sha256:11\n")
    (t / "repo" / "requirements.txt").write_text("a==1\n")


def test_the_venv_is_made_beside_the_builds_and_then_found_present(tmp_path: Path) -> None:
    setup(tmp_path)
    r = run(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    started = float((tmp_path / "trace").read_text().split()[1])
    builds = float(re.search(r"^builds (\S+)$", r.stdout, re.M)[1])  # type: ignore[index]
    print(f"the builds' turn came {builds - started:.3f} s after pip started (pip takes 2 s)")
    assert builds - started < 1.0  # the (stand-in) builds did not wait for pip
    row = re.search(r"^row: (.*)$", r.stdout, re.M)[1]  # type: ignore[index]
    m = re.fullmatch(r"installed \(2 locked packages and the project; made beside the builds in ([\d.]+) s\)", row)
    assert m and 2.0 <= float(m[1]) < 10, row
    assert (tmp_path / "repo/.venv/.bootstrap-requirements.sha256").read_text().strip()
    # the next run finds it: nothing started, nothing waited for
    (tmp_path / "trace").unlink()
    r = run(tmp_path)
    assert r.returncode == 0, r.stderr
    assert "row: present" in r.stdout and not (tmp_path / "trace").exists()


def test_a_caller_that_did_not_begin_it_gets_it_made_by_the_step(tmp_path: Path) -> None:
    setup(tmp_path)
    r = run(tmp_path, NO_BEGIN="1", PIP_SLEEP="0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^row: installed \(2 locked packages and the project; made beside the builds in [\d.]+ s\)$",
                     r.stdout, re.M), r.stdout
    assert (tmp_path / "repo/.venv/.bootstrap-requirements.sha256").read_text().strip()


def test_a_failed_install_is_one_failure_naming_pip_s_error(tmp_path: Path) -> None:
    setup(tmp_path)
    r = run(tmp_path, PIP_FAIL="1")
    assert "row: FAILED" in r.stdout and "failures: 1" in r.stdout
    assert re.search(r"^ERROR: venv: venv: pip install --require-hashes -r requirements-dev.txt failed \(exit 1\): "
                     r"ERROR: THESE PACKAGES DO NOT MATCH THE HASHES$", r.stderr, re.M), r.stderr
    assert not (tmp_path / "repo/.venv/.bootstrap-requirements.sha256").exists()  # not stamped: made again next time


def test_a_script_that_ends_early_stops_the_install_and_removes_its_temp_dir(tmp_path: Path) -> None:
    setup(tmp_path)
    r = run(tmp_path, EXIT_EARLY="1", PIP_SLEEP="30")
    assert r.returncode == 3
    assert (tmp_path / "trace").read_text().startswith("pip ")  # pip had started
    assert "pip done" not in (tmp_path / "trace").read_text()  # stopped, not waited for
    left = subprocess.run(["pgrep", "-f", f"{tmp_path}/repo/.venv/bin/python -m pip"], capture_output=True, text=True)
    assert left.stdout == "", f"pip still running: {left.stdout}"
    assert os.listdir(tmp_path / "cache/tmp") == []
