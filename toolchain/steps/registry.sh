# shellcheck shell=bash
# Step registry: the OCI registry the local farm pushes to (and the e2e tier's upstream, mirror and
# untrusted registries), built from github.com/distribution/distribution/v3 (cmd/registry) at
# REGISTRY_VERSION (versions.env) like the other binaries: cached under
# $CACHE_ROOT/registry-<version>/, linked into .toolchain/bin.
# Uses lib/common.sh, lib/gobuild.sh (wrapper_build, linked_build_step) and lib/gomodules.sh.

REGISTRY_MOD=github.com/distribution/distribution/v3
go_wrapper registry "$REGISTRY_MOD/cmd/registry" "$REGISTRY_MOD@$REGISTRY_VERSION"

build_registry() {
  # The module's go.mod directives are mirrored into the wrapper (toolchain/lock.sh go does it).
  wrapper_build registry "$OUT/registry" "" \
    "-s -w -X $REGISTRY_MOD/version.version=$REGISTRY_VERSION -X $REGISTRY_MOD/version.revision=buildkit-farm-toolchain" \
    "$REGISTRY_MOD/cmd/registry"
}

step_registry() {
  linked_build_step registry "$REGISTRY_VERSION" "$REGISTRY_MOD" build_registry
}
