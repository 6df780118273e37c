# shellcheck shell=bash
# Step go: a Go toolchain ($GO) new enough for the pinned modules; the build steps need go_ok.

GO_OK=0
go_ok() { ((GO_OK)); }

step_go() {
  step_begin go
  if [[ -z "$GO" || ! -x "$GO" ]]; then
    fail "no go binary (set GO=)"
  else
    local v
    v=$("$GO" env GOVERSION)
    v=${v#go}
    if [[ "$GOTOOLCHAIN" == local ]] && ! go_version_ge "$v" "$GO_MIN_VERSION"; then
      fail "go $v is older than $GO_MIN_VERSION (set BOOTSTRAP_GOTOOLCHAIN=auto to let go fetch one)"
    else
      GO_OK=1
      step_result "go $v"
    fi
  fi
  step_end
}
