# shellcheck shell=bash
# Step aws-emu-venv: <repo>/.aws-emu-venv, moto's server (an EC2 API emulator on 127.0.0.1) and
# the real AWS CLI v1, for the EC2 node tier (tests/ec2: SSM and EC2 for the booted node) and the wake
# measurement (tests/e2e/test_wake_emulator.py). Their own venv:
# moto[server] brings ~60 packages the project does not need. Made from
# toolchain/aws-emu/requirements.txt (every package pinned) and remade when that file changes.
# Uses lib/common.sh: step_begin/step_end/step_result/fail, mk_tmp; REPO_ROOT, PYTHON.

AWS_EMU_VENV_DIR=$REPO_ROOT/.aws-emu-venv

step_aws_emu_venv() {
  step_begin aws-emu-venv
  local req=$REPO_ROOT/toolchain/aws-emu/requirements.txt
  local stamp_file=$AWS_EMU_VENV_DIR/.bootstrap-requirements.sha256 want
  if [[ ! -f "$req" ]]; then
    fail "no $req"
    step_end
    return
  fi
  want=$(sha256sum <"$req" | cut -d' ' -f1)
  if [[ -x "$AWS_EMU_VENV_DIR/bin/python" && "$(cat "$stamp_file" 2>/dev/null)" == "$want" ]]; then
    step_result present
    step_end
    return
  fi
  local tmp log rc=0
  mk_tmp aws-emu-venv
  tmp=$MK_TMP
  log=$tmp/pip.log
  rm -rf -- "$AWS_EMU_VENV_DIR"
  {
    "$PYTHON" -m venv "$AWS_EMU_VENV_DIR" &&
      PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$AWS_EMU_VENV_DIR/bin/python" -m pip install -q -r "$req" &&
      "$AWS_EMU_VENV_DIR/bin/python" -c 'import moto; print("moto", moto.__version__)' &&
      "$AWS_EMU_VENV_DIR/bin/aws" --version
  } >"$log" 2>&1 || rc=$?
  if ((rc != 0)); then
    fail "policy venv: pip install -r toolchain/aws-emu/requirements.txt failed (exit $rc): $(tail -n 5 "$log")"
  else
    printf '%s\n' "$want" >"$stamp_file"
    step_result "installed ($(tail -n 2 "$log" | tr '\n' ' '))"
  fi
  step_end
}
