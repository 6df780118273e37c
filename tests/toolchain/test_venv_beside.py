"""steps/venv.sh: the venv is made in the background beside the Go builds (venv_begin right after the
go step, step_venv waits for it and writes its table row). Runs the real library and step with a
stand-in interpreter (`-m venv` makes bin/python and bin/bkf; `-m pip` waits, then succeeds or fails
as told), so what is checked is the step's own logic: it runs beside, it reports, it fails in one
line with pip's error, and a script that ends early stops it and removes its temp dir."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PYTHON = """\
#!/bin/bash
if [[ $1 == -m && $2 == venv ]]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && printf '#!/bin/sh\\n' >"$3/bin/bkf" && chmod +x "$3/bin/bkf"
  printf '#!%s/bin/python\\n' "$3" >"$3/bin/tool"  # a console script: it names its venv's interpreter
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
REPO_ROOT=$T/${CLONE:-repo} VENV_DIR=$T/${CLONE:-repo}/.venv PYTHON=$T/python CACHE_ROOT=$T/cache
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
    # (pip runs in the cached venv being made: $CACHE_ROOT/venvs/venv-<key>)
    left = subprocess.run(["pgrep", "-f", f"{tmp_path}/cache/venvs/venv-.*/bin/python -m pip"], capture_output=True,
                          text=True)
    assert left.stdout == "", f"pip still running: {left.stdout}"
    assert os.listdir(tmp_path / "cache/tmp") == []


def test_another_clone_gets_the_locked_packages_from_the_cache_without_pip(tmp_path: Path) -> None:
    setup(tmp_path)
    assert run(tmp_path).returncode == 0
    shutil.copytree(tmp_path / "repo", tmp_path / "clone", ignore=shutil.ignore_patterns(".venv"))
    (tmp_path / "trace").unlink()
    r = run(tmp_path, CLONE="clone")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"^row: installed \(2 locked packages from the cache and the project; ", r.stdout, re.M), r.stdout
    assert not (tmp_path / "trace").exists()  # pip did not run
    [cached] = (tmp_path / "cache/venvs").glob("venv-*")
    venv = tmp_path / "clone/.venv"
    assert venv.is_dir() and not venv.is_symlink() and not (venv / ".complete").exists()
    # the copy's scripts name the copy's interpreter; the cached venv's are left as they were
    assert (venv / "bin/tool").read_text() == f"#!{venv}/bin/python\n"
    assert (cached / "bin/tool").read_text() == f"#!{cached}/bin/python\n"
    assert (venv / "bin/bkf").samefile(cached / "bin/bkf")  # hard links, not copies
    # a cached venv left half made (no .complete: its run was interrupted) is made again
    (cached / ".complete").unlink()
    shutil.rmtree(venv)
    r = run(tmp_path, CLONE="clone")
    assert re.search(r"^row: installed \(2 locked packages and the project; ", r.stdout, re.M), r.stdout
    assert (tmp_path / "trace").read_text().startswith("pip ") and (cached / ".complete").exists()


PINNED = """\
set -euo pipefail
source "$REPO/toolchain/lib/common.sh"
REPO_ROOT=$T/repo PYTHON=$T/python CACHE_ROOT=$T/cache
trap cleanup EXIT
step_begin policy-venv
pinned_venv "$T/repo/.policy-venv" "$T/repo/lock.txt" "echo checked; ${CHECK:-true}"
step_end
echo "failures: ${#FAILURES[@]}"
"""


def test_a_pinned_venv_is_a_link_to_the_cached_venv_of_its_lock(tmp_path: Path) -> None:
    setup(tmp_path)
    (tmp_path / "pinned.sh").write_text(PINNED)
    (tmp_path / "repo/lock.txt").write_text("a==1 \\\n    --hash=sha256:00\n")
    link = tmp_path / "repo/.policy-venv"

    def pinned(**env: str) -> str:
        r = subprocess.run(["bash", str(tmp_path / "pinned.sh")], capture_output=True, text=True, timeout=60,
                           env={"PATH": "/usr/bin:/bin", "REPO": str(ROOT), "T": str(tmp_path), "PIP_SLEEP": "0",
                                **env})
        return r.stdout + r.stderr

    assert "policy-venv: " in (out := pinned()) and "(installed (checked ))" in out, out
    first = os.readlink(link)
    assert first.startswith(f"{tmp_path}/cache/venvs/policy-venv-")
    assert "(present)" in pinned() and os.readlink(link) == first
    (tmp_path / "trace").unlink()
    (tmp_path / "repo/lock.txt").write_text("a==2 \\\n    --hash=sha256:22\n")  # the lock changed: another venv
    assert "(installed (checked ))" in pinned() and os.readlink(link) != first
    (tmp_path / "repo/lock.txt").write_text("a==1 \\\n    --hash=sha256:00\n")  # back: the first, from the cache
    (tmp_path / "trace").unlink()
    assert "(linked (checked ))" in pinned() and os.readlink(link) == first
    assert not (tmp_path / "trace").exists()
    # a venv whose check fails is not linked, and the step fails naming it
    os.unlink(link)
    out = pinned(CHECK="false")
    assert "failures: 1" in out and "ERROR: policy-venv: .policy-venv: " in out and not link.exists(), out


def test_two_bootstraps_at_once_make_the_cached_venv_once(tmp_path: Path) -> None:
    setup(tmp_path)
    (tmp_path / "once.sh").write_text('source "$REPO/toolchain/lib/common.sh"\nPYTHON=$T/python CACHE_ROOT=$T/cache\n'
                                      'cached_venv venv "$T/repo/requirements-dev.txt"\n')
    env = {"PATH": "/usr/bin:/bin", "REPO": str(ROOT), "T": str(tmp_path), "PIP_SLEEP": "2"}
    both = [subprocess.Popen(["bash", str(tmp_path / "once.sh")], stdout=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    outs = sorted(p.communicate(timeout=60)[0] for p in both)
    assert [p.returncode for p in both] == [0, 0], outs
    # pip ran once, for the one that made it (a start line, then "pip done")
    assert len(re.findall(r"^pip \d", (tmp_path / "trace").read_text(), re.M)) == 1
    assert outs[0].startswith("cached-venv: found ")
    assert outs[0].rstrip().endswith("(made meanwhile by another bootstrap)"), outs
    assert outs[1].startswith("cached-venv: made "), outs
