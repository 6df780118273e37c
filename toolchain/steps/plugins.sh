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

kubernetes_plugin_check() {
  # kubernetes_plugin_check announced|port [PATH]: run a check of toolchain/install_providers.py
  # (the same ones the substitute plugins get) with the venv's python; prints its one-line error.
  "$VENV_DIR/bin/python" -I -c '
import sys
sys.path.insert(0, sys.argv[1])
import install_providers as ip
try:
    if sys.argv[2] == "announced":
        ip.check_version(ip.Plugin("kubernetes", "pulumi_kubernetes", sys.argv[3]),
                         ip.sdk_plugin_version("pulumi_kubernetes"))
    else:
        ip.check_announces_port(ip.Path(sys.argv[3]))
except ip.InstallError as e:
    sys.exit(str(e))
' "$SCRIPT_DIR" "$@" 2>&1
}

step_kubernetes_plugin() {
  # The real pulumi-kubernetes provider (built by steps/cluster.sh) as the `kubernetes` plugin, under
  # the version the venv's pulumi_kubernetes announces (the engine loads exactly that version).
  step_begin kubernetes-plugin
  local v=$PULUMI_KUBERNETES_PROVIDER_VERSION pulumi=$BIN_DIR/pulumi err
  local bin=$CACHE_ROOT/pulumi-kubernetes-$v/pulumi-resource-kubernetes
  local installed=$PULUMI_HOME_DIR/plugins/resource-kubernetes-v$v/pulumi-resource-kubernetes
  if ! venv_ok || [[ ! -x "$pulumi" ]]; then
    fail "skipped: needs the venv and the pulumi CLI"
  elif [[ ! -x "$bin" ]]; then
    fail "skipped: the provider was not built ($bin is missing)"
  elif ! err=$(kubernetes_plugin_check announced "$v"); then
    fail "$err"
  elif cmp -s "$bin" "$installed"; then
    step_result present
  elif ! err=$(PULUMI_HOME=$PULUMI_HOME_DIR PULUMI_SKIP_UPDATE_CHECK=true \
    "$pulumi" plugin install resource kubernetes "$v" --file "$bin" --reinstall 2>&1 </dev/null); then
    fail "pulumi plugin install resource kubernetes $v --file $bin failed: $err"
  elif ! err=$(kubernetes_plugin_check port "$installed"); then
    fail "$err"
  else
    step_result "installed $v"
  fi
  step_end
}
