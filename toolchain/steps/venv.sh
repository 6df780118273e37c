# shellcheck shell=bash
# Step venv: <repo>/.venv from requirements-dev.txt (the dev lock: every package pinned and hashed,
# the runtime ones at requirements.txt's versions) and the project itself (editable: `bkf`). Made
# anew whenever a lock changes (a sha256 of both locks is stamped in the venv), so that the venv
# holds exactly the lock. Uses lib/common.sh: pip_install_locked, lock_stamp.

VENV_OK=0
venv_ok() { ((VENV_OK)); }

step_venv() {
  step_begin venv
  local stamp_file=$VENV_DIR/.bootstrap-requirements.sha256 lock=$REPO_ROOT/requirements-dev.txt
  local want
  want=$(cd "$REPO_ROOT" && lock_stamp requirements-dev.txt requirements.txt)
  if [[ -x "$VENV_DIR/bin/python" && -x "$VENV_DIR/bin/bkf" && "$(cat "$stamp_file" 2>/dev/null)" == "$want" ]]; then
    step_result present
    VENV_OK=1
    step_end
    return
  fi
  mk_tmp venv
  local log=$MK_TMP/pip.log rc=0
  # anew: installing over an older venv would keep packages the lock no longer lists
  rm -rf -- "$VENV_DIR"
  {
    "$PYTHON" -m venv "$VENV_DIR" &&
      pip_install_locked "$VENV_DIR/bin/python" "$lock" &&
      # the project itself: its dependencies came from the lock (--no-deps) and so did its build
      # backend (setuptools, --no-build-isolation): nothing unpinned is fetched for it
      PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$VENV_DIR/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$REPO_ROOT"
  } >"$log" 2>&1 || rc=$?
  if ((rc != 0)); then
    fail "venv: pip install --require-hashes -r requirements-dev.txt failed (exit $rc): $(tail -n 5 "$log")"
  else
    printf '%s\n' "$want" >"$stamp_file"
    step_result "installed ($(grep -c '^[A-Za-z0-9]' "$lock") locked packages and the project)"
    VENV_OK=1
  fi
  step_end
}
