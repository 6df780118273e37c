# shellcheck shell=bash
# Step actionlint: the GitHub Actions workflow linter the tests run on examples/ci/github, built from
# github.com/rhysd/actionlint (cmd/actionlint) at ACTIONLINT_VERSION (versions.env) like the other
# binaries: cached under $CACHE_ROOT/actionlint-<version>/, linked into .toolchain/bin.
# Uses lib/common.sh and lib/gobuild.sh: step_begin/step_end/fail, cached_build/wrapper_build, go_ok; BIN_DIR.

ACTIONLINT_MOD=github.com/rhysd/actionlint

build_actionlint() {
  # actionlint's go.mod has no replace or exclude directives; the wrapper keeps the recipe uniform.
  wrapper_build actionlint "$OUT/actionlint" "" \
    "-s -w -X $ACTIONLINT_MOD.version=$ACTIONLINT_VERSION -X $ACTIONLINT_MOD.installedFrom=buildkit-farm-toolchain" \
    "$ACTIONLINT_MOD/cmd/actionlint" "$ACTIONLINT_MOD@$ACTIONLINT_VERSION"
}

step_actionlint() {
  step_begin actionlint
  local bin=$CACHE_ROOT/actionlint-$ACTIONLINT_VERSION/actionlint
  if go_ok; then
    cached_build actionlint "$ACTIONLINT_VERSION" "$ACTIONLINT_MOD@$ACTIONLINT_VERSION" build_actionlint \
      actionlint || true
  else
    fail "skipped: no usable go"
  fi
  mkdir -p "$BIN_DIR"
  if [[ -x "$bin" ]]; then
    ln -sfn "$bin" "$BIN_DIR/actionlint"
  else
    rm -f "$BIN_DIR/actionlint"
  fi
  step_end
}
