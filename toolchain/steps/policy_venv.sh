# shellcheck shell=bash
# Step policy-venv: <repo>/.policy-venv, the policy pack's own venv (review/policy/run runs
# `python -m pulumi.policy` from it). pulumi-policy 1.21.0 needs protobuf ~=5.29 and the project
# venv has protobuf 6, so the pack cannot share .venv. Made from review/policy/requirements.txt
# (the lock of requirements.in: every package pinned and hashed) and remade from scratch when that
# file changes (its sha256 is stamped in the venv, like step_venv does for .venv).
# Uses lib/common.sh: step_begin/step_end, pinned_venv; REPO_ROOT.

POLICY_VENV_DIR=$REPO_ROOT/.policy-venv

step_policy_venv() {
  step_begin policy-venv
  pinned_venv "$POLICY_VENV_DIR" "$REPO_ROOT/review/policy/requirements.txt" \
    "python -c 'from pulumi_policy.version import VERSION; import google.protobuf as p; print(\"pulumi-policy\", VERSION, \"protobuf\", p.__version__)'"
  step_end
}
