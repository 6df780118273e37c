# shellcheck shell=bash
# Step ec2-venv: <repo>/.ec2-venv, the EC2 node tier's host tools (tests/ec2): moto's AWS API
# server (SSM Parameter Store, EC2) and the AWS CLI that talks to it through AWS_ENDPOINT_URL.
# moto pulls boto3/botocore, Flask and cfn-lint, none of which the project venv needs, so the
# tier has its own venv. Made from tests/ec2/requirements-host.txt (every package pinned) and
# remade from scratch when that file changes (its sha256 is stamped in the venv).
# Uses lib/common.sh: step_begin/step_end/step_result/fail, mk_tmp; REPO_ROOT, PYTHON.

EC2_VENV_DIR=$REPO_ROOT/.ec2-venv

step_ec2_venv() {
  step_begin ec2-venv
  local req=$REPO_ROOT/tests/ec2/requirements-host.txt
  local stamp_file=$EC2_VENV_DIR/.bootstrap-requirements.sha256 want
  if [[ ! -f "$req" ]]; then
    fail "no $req"
    step_end
    return
  fi
  want=$(sha256sum <"$req" | cut -d' ' -f1)
  if [[ -x "$EC2_VENV_DIR/bin/python" && "$(cat "$stamp_file" 2>/dev/null)" == "$want" ]]; then
    step_result present
    step_end
    return
  fi
  local tmp log rc=0
  mk_tmp ec2-venv
  tmp=$MK_TMP
  log=$tmp/pip.log
  rm -rf -- "$EC2_VENV_DIR"
  {
    "$PYTHON" -m venv "$EC2_VENV_DIR" &&
      PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$EC2_VENV_DIR/bin/python" -m pip install -q -r "$req" &&
      "$EC2_VENV_DIR/bin/moto_server" --help >/dev/null &&
      "$EC2_VENV_DIR/bin/aws" --version
  } >"$log" 2>&1 || rc=$?
  if ((rc != 0)); then
    fail "ec2 venv: pip install -r tests/ec2/requirements-host.txt failed (exit $rc): $(tail -n 5 "$log")"
  else
    printf '%s\n' "$want" >"$stamp_file"
    step_result "installed ($(tail -n 1 "$log" | cut -d' ' -f1))"
  fi
  step_end
}
