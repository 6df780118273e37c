# shellcheck shell=bash
# Step aws-emu-venv: <repo>/.aws-emu-venv, moto's server (an EC2 API emulator on 127.0.0.1) and
# the real AWS CLI v1, for the EC2 node tier (tests/ec2: SSM and EC2 for the booted node) and the wake
# measurement (tests/e2e/test_wake_emulator.py). Their own venv:
# moto[server] brings ~60 packages the project does not need. Made from
# toolchain/aws-emu/requirements.txt (the lock of requirements.in: every package pinned and hashed)
# and remade when that file changes.
# Uses lib/common.sh: step_begin/step_end, pinned_venv; REPO_ROOT.

AWS_EMU_VENV_DIR=$REPO_ROOT/.aws-emu-venv

step_aws_emu_venv() {
  step_begin aws-emu-venv
  pinned_venv "$AWS_EMU_VENV_DIR" "$REPO_ROOT/toolchain/aws-emu/requirements.txt" \
    "python -c 'import moto; print(\"moto\", moto.__version__)' && aws --version"
  step_end
}
