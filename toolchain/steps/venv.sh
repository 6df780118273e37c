# shellcheck shell=bash
# Step venv: <repo>/.venv with requirements-dev.txt and the project itself (editable: `bkf`), reinstalled
# when the requirements change
# (a sha256 of both files is stamped in the venv); the later steps need venv_ok.

VENV_OK=0
venv_ok() { ((VENV_OK)); }

step_venv() {
  step_begin venv
  local stamp_file=$VENV_DIR/.bootstrap-requirements.sha256
  local want
  want=$(cd "$REPO_ROOT" && cat requirements-dev.txt requirements.txt | sha256sum | cut -d' ' -f1)
  if [[ -x "$VENV_DIR/bin/python" && -x "$VENV_DIR/bin/bkf" && "$(cat "$stamp_file" 2>/dev/null)" == "$want" ]]; then
    step_result present
    VENV_OK=1
    step_end
    return
  fi
  local rc=0
  {
    if [[ ! -x "$VENV_DIR/bin/python" ]]; then "$PYTHON" -m venv "$VENV_DIR"; fi &&
      PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$VENV_DIR/bin/python" -m pip install -q -r "$REPO_ROOT/requirements-dev.txt"
  } || rc=$?
  # the project itself, editable and without its dependencies (pinned above): puts `bkf` on PATH
  if ((rc == 0)) && [[ ! -x "$VENV_DIR/bin/bkf" ]]; then
    PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
      "$VENV_DIR/bin/python" -m pip install -q --no-deps -e "$REPO_ROOT" || rc=$?
  fi
  if ((rc != 0)); then
    fail "venv: pip install -r requirements-dev.txt failed (exit $rc)"
  else
    printf '%s\n' "$want" >"$stamp_file"
    step_result installed
    VENV_OK=1
  fi
  step_end
}
