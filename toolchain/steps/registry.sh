# shellcheck shell=bash
# Step registry: the OCI registry the local farm pushes to (and the e2e tier's upstream, mirror and
# untrusted registries), built from github.com/distribution/distribution/v3 (cmd/registry) at
# REGISTRY_VERSION (versions.env) like the other binaries: cached under
# $CACHE_ROOT/registry-<version>/, linked into .toolchain/bin.
# Uses lib/common.sh and lib/gobuild.sh: step_begin/step_end/fail, cached_build/wrapper_build, go_ok; BIN_DIR.

REGISTRY_MOD=github.com/distribution/distribution/v3

build_registry() {
  # The module's go.mod directives are mirrored into the wrapper (wrapper_build does it).
  wrapper_build registry "$OUT/registry" "" \
    "-s -w -X $REGISTRY_MOD/version.version=$REGISTRY_VERSION -X $REGISTRY_MOD/version.revision=buildkit-farm-toolchain" \
    "$REGISTRY_MOD/cmd/registry" "$REGISTRY_MOD@$REGISTRY_VERSION"
}

step_registry() {
  step_begin registry
  local bin=$CACHE_ROOT/registry-$REGISTRY_VERSION/registry
  if go_ok; then
    cached_build registry "$REGISTRY_VERSION" "$REGISTRY_MOD@$REGISTRY_VERSION" build_registry \
      registry || true
  else
    fail "skipped: no usable go"
  fi
  mkdir -p "$BIN_DIR"
  if [[ -x "$bin" ]]; then
    ln -sfn "$bin" "$BIN_DIR/registry"
  else
    rm -f "$BIN_DIR/registry"
  fi
  step_end
}
