# shellcheck shell=bash
# Step venv: <repo>/.venv from requirements-dev.txt (the dev lock: every package pinned and hashed,
# the runtime ones at requirements.txt's versions) and the project itself (editable: `bkf`). Made
# anew whenever a lock changes (a sha256 of both locks is stamped in the venv), so that the venv
# holds exactly the lock. Uses lib/common.sh: cached_venv, lock_stamp, bg_start.
#
# venv_begin starts making it in the background right after the go step, and step_venv (its table
# row, after the builds) waits for it: alone, pip kept one of the two cores busy for its 58 s while
# the other idled; beside the Go builds that time is mostly absorbed (docs/toolchain.md).

VENV_OK=0
venv_ok() { ((VENV_OK)); }

VENV_BG_PID=
VENV_BG_DIR=
VENV_BG_START=

venv_want() { (cd "$REPO_ROOT" && lock_stamp requirements-dev.txt requirements.txt); }

venv_present() {
  [[ -x "$VENV_DIR/bin/python" && -x "$VENV_DIR/bin/bkf" &&
    "$(cat "$VENV_DIR/.bootstrap-requirements.sha256" 2>/dev/null)" == "$(venv_want)" ]]
}

venv_make() {
  # venv_make LOG: the venv anew (installing over an older venv would keep packages the lock no
  # longer lists): a copy of the cached venv of the lock (cached_venv: pip runs only when the
  # cache has none), then the project; stamps it when both succeed. The copy is of hard links
  # (seconds, no space); its scripts name the cached venv's interpreter and are rewritten to name
  # the copy's (sed -i writes a new file, so the cached venv's own stay as they are). Nothing
  # writes into a linked file in place: pip and the compiler's .pyc files replace files whole.
  local log=$1 want
  want=$(venv_want)
  rm -rf -- "$VENV_DIR"
  {
    cached_venv venv "$REPO_ROOT/requirements-dev.txt" &&
      cp -al -- "$CACHED_VENV" "$VENV_DIR" &&
      rm -f -- "$VENV_DIR/.complete" &&
      { grep -rlIZF -- "$CACHED_VENV" "$VENV_DIR/bin" || true; } |
      xargs -0 -r sed -i "s|$CACHED_VENV|$VENV_DIR|g" &&
      # the project itself: its dependencies came from the lock (--no-deps) and so did its build
      # backend (setuptools, --no-build-isolation): nothing unpinned is fetched for it
      PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$VENV_DIR/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$REPO_ROOT" &&
      printf '%s\n' "$want" >"$VENV_DIR/.bootstrap-requirements.sha256"
  } >"$log" 2>&1
}

venv_begin() {
  # Starts venv_make in the background when the venv must be made; a no-op otherwise.
  venv_present && return 0
  mk_tmp venv
  VENV_BG_DIR=$MK_TMP
  VENV_BG_START=$(now)
  bg_start venv_make "$VENV_BG_DIR/pip.log"
  VENV_BG_PID=$BG_PID
}

step_venv() {
  step_begin venv
  # begun right after the go step (bootstrap.sh); a caller that did not gets it begun here
  [[ -n "$VENV_BG_PID" ]] || venv_begin
  if [[ -z "$VENV_BG_PID" ]]; then
    step_result present
    VENV_OK=1
    step_end
    return
  fi
  local rc=0 took n
  wait "$VENV_BG_PID" || rc=$?
  took=$(elapsed "$VENV_BG_START" "$(now)")
  bg_done "$VENV_BG_PID"
  VENV_BG_PID=
  if ((rc != 0)); then
    fail "venv: pip install --require-hashes -r requirements-dev.txt failed (exit $rc): $(tail -n 5 "$VENV_BG_DIR/pip.log")"
  else
    n=$(grep -c '^[A-Za-z0-9]' "$REPO_ROOT/requirements-dev.txt")
    step_result "installed ($n locked packages$(grep -q '^cached-venv: made ' "$VENV_BG_DIR/pip.log" || echo ' from the cache') and the project; made beside the builds in $took s)"
    VENV_OK=1
  fi
  step_end
}
