# shellcheck shell=bash
# Step substitute-providers: install the substitute tls/command plugins
# (toolchain/providers/bkf_providers) into .pulumi-home; the work is in
# toolchain/install_providers.py, which reports NUL-terminated records on stdout: first the
# names it installed (space-separated), then one record per failure.

step_providers() {
  step_begin substitute-providers
  local py=$VENV_DIR/bin/python
  if ! venv_ok || [[ ! -x "$BIN_DIR/pulumi" ]]; then
    fail "skipped: needs the venv and the pulumi CLI"
    step_end
    return
  fi
  mk_tmp providers
  local report=$MK_TMP/report err
  if ! err=$("$py" -I "$SCRIPT_DIR/install_providers.py" --python "$py" --pulumi "$BIN_DIR/pulumi" \
    --pulumi-home "$PULUMI_HOME_DIR" --package-dir "$REPO_ROOT/toolchain/providers" \
    --launcher-dir "$TOOLCHAIN_DIR/providers" \
    "tls:pulumi_tls:$PULUMI_TLS_VERSION" "command:pulumi_command:$PULUMI_COMMAND_VERSION" \
    2>&1 >"$report"); then
    fail "toolchain/install_providers.py failed: $err"
    step_end
    return
  fi
  local installed msg
  {
    IFS= read -r -d '' installed || true
    while IFS= read -r -d '' msg; do fail "$msg"; done
  } <"$report"
  if [[ -n "$installed" && "$STEP_RESULT" == ok ]]; then
    step_result "installed $installed"
  fi
  step_end
}
