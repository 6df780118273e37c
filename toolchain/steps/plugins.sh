# shellcheck shell=bash
# Step plugins: the venv's Python SDK must be the version of the CLI built (the tls/command
# plugins are installed by steps/providers.sh).

step_plugins() {
  step_begin plugins
  if ! venv_ok; then
    fail "skipped: no venv"
    step_end
    return
  fi
  local pulumi=$BIN_DIR/pulumi
  if [[ ! -x "$pulumi" ]]; then
    fail "skipped: no pulumi CLI"
    step_end
    return
  fi
  local sdkver
  sdkver=$("$VENV_DIR/bin/python" -c 'import importlib.metadata as m; print(m.version("pulumi"))' 2>&1) || true
  if [[ "$sdkver" != "$PULUMI_VERSION" ]]; then
    fail "Python SDK pulumi is '$sdkver' but the CLI built is $PULUMI_VERSION"
  fi
  step_end
}
