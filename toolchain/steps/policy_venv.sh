# shellcheck shell=bash
# Step policy-venv: <repo>/.policy-venv, the policy pack's own venv (review/policy/run runs
# `python -m pulumi.policy` from it). pulumi-policy 1.21.0 needs protobuf ~=5.29 and the project
# venv has protobuf 6, so the pack cannot share .venv. Made from review/policy/requirements.txt
# (every package pinned) and remade from scratch when that file changes (its sha256 is stamped
# in the venv, like step_venv does for .venv).
# Uses lib/common.sh: step_begin/step_end/step_result/fail, mk_tmp; REPO_ROOT, PYTHON.

POLICY_VENV_DIR=$REPO_ROOT/.policy-venv

step_policy_venv() {
  step_begin policy-venv
  local req=$REPO_ROOT/review/policy/requirements.txt
  local stamp_file=$POLICY_VENV_DIR/.bootstrap-requirements.sha256 want
  if [[ ! -f "$req" ]]; then
    fail "no $req"
    step_end
    return
  fi
  want=$(sha256sum <"$req" | cut -d' ' -f1)
  if [[ -x "$POLICY_VENV_DIR/bin/python" && "$(cat "$stamp_file" 2>/dev/null)" == "$want" ]]; then
    step_result present
    step_end
    return
  fi
  local tmp log rc=0
  mk_tmp policy-venv
  tmp=$MK_TMP
  log=$tmp/pip.log
  rm -rf -- "$POLICY_VENV_DIR"
  {
    "$PYTHON" -m venv "$POLICY_VENV_DIR" &&
      PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$POLICY_VENV_DIR/bin/python" -m pip install -q -r "$req" &&
      "$POLICY_VENV_DIR/bin/python" -c \
        'from pulumi_policy.version import VERSION; import google.protobuf as p; print(VERSION, p.__version__)'
  } >"$log" 2>&1 || rc=$?
  if ((rc != 0)); then
    fail "policy venv: pip install -r review/policy/requirements.txt failed (exit $rc): $(tail -n 5 "$log")"
  else
    printf '%s\n' "$want" >"$stamp_file"
    step_result "installed (pulumi-policy, protobuf: $(tail -n 1 "$log"))"
  fi
  step_end
}
