# shellcheck shell=bash
# Bootstrap bookkeeping: logging, steps and their results, failures, temp dirs, the summary.
# Sourced by toolchain/bootstrap.sh; uses its CACHE_ROOT and TOOLCHAIN_DIR.

log() { printf '==> %s\n' "$*"; }

now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# The parts asked for (bootstrap.sh [PART...]); farm is in every part.
PARTS=()
select_parts() {
  local p
  PARTS=(farm)
  if (($# == 0)); then set -- all; fi
  for p in "$@"; do
    case $p in
      farm) ;;
      test | cluster) PARTS+=("$p") ;;
      all) PARTS+=(test cluster) ;;
      *)
        printf 'bootstrap.sh: unknown part %q (allowed: farm, test, cluster, all)\n' "$p" >&2
        exit 2
        ;;
    esac
  done
}
want() { [[ " ${PARTS[*]} " == *" $1 "* ]]; }

# One entry per finished step, in order, for the summary table.
STEP_NAMES=()
STEP_TIMES=()
STEP_RESULTS=()
FAILURES=()
TOLERATED=()
# The running step; STEP_RESULT says what it did (ok, cached, installed, FAILED, ...).
STEP_START=
STEP_NAME=
STEP_RESULT=
T0=

step_begin() {
  STEP_NAME=$1
  STEP_RESULT=ok
  STEP_START=$(now)
  log "step $STEP_NAME"
}

step_result() {
  # step_result TEXT: what the current step did, for its line and the summary table.
  STEP_RESULT=$1
}

step_end() {
  local t
  t=$(elapsed "$STEP_START" "$(now)")
  STEP_NAMES+=("$STEP_NAME")
  STEP_TIMES+=("$t")
  STEP_RESULTS+=("$STEP_RESULT")
  printf '    %s: %ss (%s)\n' "$STEP_NAME" "$t" "$STEP_RESULT"
}

fail() {
  # fail MESSAGE: record a failure of the current step; the script goes on.
  STEP_RESULT=FAILED
  if [[ " ${BOOTSTRAP_ALLOW_FAIL:-} " == *" $STEP_NAME "* ]]; then
    STEP_RESULT="FAILED (allowed)"
    TOLERATED+=("$STEP_NAME: $1")
  else
    FAILURES+=("$STEP_NAME: $1")
  fi
  printf 'ERROR: %s: %s\n' "$STEP_NAME" "$1" >&2
}

# Temp dirs under the cache root (same filesystem, so finished dirs can be renamed into place).
TMP_DIRS=()
cleanup() {
  local d p
  # a step still running in the background (bg_start) stops, with every process under it (pip
  # runs two subshells down: cached_venv's locked one), before its temp dir goes
  for p in "${BG_PIDS[@]}"; do
    kill_tree "$p"
    wait "$p" 2>/dev/null || true
  done
  for d in "${TMP_DIRS[@]}"; do rm -rf -- "$d"; done
}

kill_tree() {
  # kill_tree PID: SIGTERM to PID's descendants, deepest first, then to PID.
  local c
  for c in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$c"; done
  kill "$1" 2>/dev/null || true
}

# Work started in the background (venv_begin) that has not been waited for yet.
BG_PIDS=()
BG_PID=
bg_start() {
  # bg_start CMD...: runs CMD in a background subshell (with errexit, as here: its first failing
  # command ends it, and `wait` returns its status); sets BG_PID. The caller waits for it and then
  # calls bg_done; cleanup stops it (and its children) if the script exits first.
  "$@" &
  BG_PID=$!
  BG_PIDS+=("$BG_PID")
}
bg_done() {
  local p keep=()
  for p in "${BG_PIDS[@]}"; do [[ "$p" == "$1" ]] || keep+=("$p"); done
  BG_PIDS=("${keep[@]}")
}

MK_TMP=
mk_tmp() {
  # mk_tmp PREFIX: sets MK_TMP to a new temp dir, removed at exit (call it in this shell, not
  # in a $(...) subshell, so that the cleanup list sees it).
  mkdir -p "$CACHE_ROOT/tmp"
  MK_TMP=$(mktemp -d "$CACHE_ROOT/tmp/$1.XXXXXX")
  TMP_DIRS+=("$MK_TMP")
}

clean_stale_tmp() {
  # Leftovers of interrupted runs (a day old, so a concurrent run is left alone).
  if [[ -d "$CACHE_ROOT/tmp" ]]; then
    find "$CACHE_ROOT/tmp" -mindepth 1 -maxdepth 1 -mmin +1440 -exec rm -rf {} + || true
  fi
}

summary() {
  # The step table, then the failures; returns 1 if any failure was not allowed.
  local total
  total=$(elapsed "$T0" "$(now)")
  printf '\n%-28s %10s  %s\n' step seconds result
  local i
  for i in "${!STEP_NAMES[@]}"; do
    printf '%-28s %10s  %s\n' "${STEP_NAMES[$i]}" "${STEP_TIMES[$i]}" "${STEP_RESULTS[$i]}"
  done
  printf '%-28s %10s\n' total "$total"
  local f
  if ((${#TOLERATED[@]})); then
    printf '\n%d failure(s) allowed by BOOTSTRAP_ALLOW_FAIL:\n' "${#TOLERATED[@]}" >&2
    for f in "${TOLERATED[@]}"; do printf -- '- %s\n' "$f" >&2; done
  fi
  if ((${#FAILURES[@]})); then
    printf '\n%d failure(s):\n' "${#FAILURES[@]}" >&2
    for f in "${FAILURES[@]}"; do printf -- '- %s\n' "$f" >&2; done
    return 1
  fi
  printf '\nok: source %s\n' "$TOOLCHAIN_DIR/env.sh"
}

pip_install_locked() {
  # pip_install_locked PYTHON LOCK [PIP-OPTION...]: install exactly the packages of LOCK (a
  # generated .txt, every package pinned with its hashes: toolchain/lock.sh python) into PYTHON's
  # environment. --require-hashes: a file whose sha256 is not one listed, an unpinned or an unhashed
  # package (a dependency missing from the lock included) fails the install; --only-binary: no
  # sdist is built, so no build dependency is fetched outside the lock.
  local py=$1 lock=$2
  shift 2
  PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$py" -m pip install -q --require-hashes \
    --only-binary=:all: "$@" -r "$lock"
}

lock_stamp() {
  # lock_stamp LOCK...: the sha256 of the locks' contents, stamped in a venv made from them.
  cat -- "$@" | sha256sum | cut -d' ' -f1
}

# Venvs of the locked packages, kept in the cache by what they are made of (the locks and the
# interpreter), like the binaries: a clone's venvs come from there in seconds instead of pip's
# minute and a half per fresh clone (68 s, 11 s and 35 s for the three venvs of `make test`).
CACHED_VENV=
CACHED_VENV_MADE=0
cached_venv() {
  # cached_venv NAME LOCK...: sets CACHED_VENV to $CACHE_ROOT/venvs/NAME-<key>, a venv holding
  # exactly the packages of the LOCKs (pip_install_locked of each, in order), made when absent
  # (CACHED_VENV_MADE=1) under a lock, so that two bootstraps at once make it once. A venv
  # cannot be moved (its scripts name its path), so it is made in place and marked complete last;
  # one left half-made by an interrupted run is made again. pip's output goes to stdout.
  local name=$1 key dir lock rc=0
  shift
  CACHED_VENV_MADE=0
  key=$({ cat -- "$@"; readlink -f "$(command -v "$PYTHON")"; "$PYTHON" --version 2>&1; echo recipe=1; } |
    sha256sum | cut -c1-16)
  dir=$CACHE_ROOT/venvs/$name-$key
  CACHED_VENV=$dir
  if [[ -e "$dir/.complete" ]]; then
    echo "cached-venv: found $dir"
    return 0
  fi
  mkdir -p "$CACHE_ROOT/venvs"
  lock=$CACHE_ROOT/venvs/.$name-$key.lock
  # (each command checked: a caller's errexit does not reach a subshell run in an && list; exit
  # 10: another bootstrap made it while this one waited for the lock)
  (
    flock 9 || exit
    [[ -e "$dir/.complete" ]] && exit 10
    rm -rf -- "$dir" && "$PYTHON" -m venv "$dir" || exit
    for req in "$@"; do pip_install_locked "$dir/bin/python" "$req" || exit; done
    : >"$dir/.complete"
  ) 9>"$lock" || rc=$?
  if ((rc == 10)); then
    echo "cached-venv: found $dir (made meanwhile by another bootstrap)"
    return 0
  fi
  ((rc == 0)) || return "$rc"
  CACHED_VENV_MADE=1
  echo "cached-venv: made $dir"
}

pinned_venv() {
  # pinned_venv DIR LOCK CHECK: DIR a link to the cached venv of LOCK (cached_venv), made anew
  # whenever the lock changes (a new key: the link then names another venv). CHECK, a command run
  # with DIR/bin first on PATH, proves the venv works; its last lines become the step's result.
  local dir=$1 req=$2 check=$3 log rc=0
  if [[ ! -f "$req" ]]; then
    fail "no $req"
    return
  fi
  mk_tmp "venv-${dir##*/}"
  log=$MK_TMP/pip.log
  cached_venv "${dir##*/.}" "$req" >"$log" 2>&1 || rc=$?
  if ((rc == 0)) && [[ "$(readlink "$dir")" == "$CACHED_VENV" ]] && ((!CACHED_VENV_MADE)); then
    step_result present
    return
  fi
  if ((rc == 0)); then
    rm -rf -- "$dir"
    ln -s "$CACHED_VENV" "$dir"
    PATH="$dir/bin:$PATH" bash -c "$check" >"$MK_TMP/check.log" 2>&1 || rc=$?
    cat "$MK_TMP/check.log" >>"$log"
  fi
  if ((rc != 0)); then
    rm -rf -- "$dir"
    fail "${dir##*/}: pip install --require-hashes -r ${req#"$REPO_ROOT"/} failed (exit $rc): $(tail -n 5 "$log")"
    return
  fi
  step_result "$( ((CACHED_VENV_MADE)) && echo installed || echo linked) ($(tail -n 2 "$MK_TMP/check.log" | tr '\n' ' '))"
}
