# shellcheck shell=bash
# Step actionlint: the GitHub Actions workflow linter the tests run on examples/ci/github, built from
# github.com/rhysd/actionlint (cmd/actionlint) at ACTIONLINT_VERSION (versions.env) like the other
# binaries: cached under $CACHE_ROOT/actionlint-<version>/, linked into .toolchain/bin.
# Uses lib/common.sh, lib/gobuild.sh (wrapper_build, linked_build_step) and lib/gomodules.sh.

ACTIONLINT_MOD=github.com/rhysd/actionlint
go_wrapper actionlint "$ACTIONLINT_MOD/cmd/actionlint" "$ACTIONLINT_MOD@$ACTIONLINT_VERSION"

build_actionlint() {
  # actionlint's go.mod has no replace or exclude directives; the wrapper keeps the recipe uniform.
  wrapper_build actionlint "$OUT/actionlint" "" \
    "-s -w -X $ACTIONLINT_MOD.version=$ACTIONLINT_VERSION -X $ACTIONLINT_MOD.installedFrom=buildkit-farm-toolchain" \
    "$ACTIONLINT_MOD/cmd/actionlint"
}

step_actionlint() {
  linked_build_step actionlint "$ACTIONLINT_VERSION" "$ACTIONLINT_MOD" build_actionlint
}
