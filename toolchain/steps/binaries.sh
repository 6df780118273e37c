# shellcheck shell=bash
# Step binaries: buildkitd, buildctl, docker-buildx, the Pulumi CLI and the Python language host,
# each built from its pinned Go module (versions.env; its wrapper module in toolchain/modules) or
# taken from the cache; one table row each.
# The build_* recipes run in a re-invoked bootstrap.sh (lib/gobuild.sh) and write into $OUT.

BUILDKIT_MOD=github.com/moby/buildkit
BUILDX_MOD=github.com/docker/buildx
PULUMI_PKG_MOD=github.com/pulumi/pulumi/pkg/v3
PULUMI_SDK_MOD=github.com/pulumi/pulumi/sdk/v3
PULUMI_LANGPY_PKG=$PULUMI_SDK_MOD/python/cmd/pulumi-language-python

go_wrapper buildkit "$BUILDKIT_MOD/cmd/buildkitd $BUILDKIT_MOD/cmd/buildctl" "$BUILDKIT_MOD@$BUILDKIT_VERSION"
go_wrapper buildx "$BUILDX_MOD/cmd/buildx" "$BUILDX_MOD@$BUILDX_VERSION"
# pkg/go.mod replaces sdk/v3 => ../sdk (local, skipped by mirror_directives): the wrapper requires
# the published sdk/v3 at the same version instead; the clipboard replace is mirrored.
go_wrapper pulumi "$PULUMI_PKG_MOD/cmd/pulumi" "$PULUMI_PKG_MOD@v$PULUMI_VERSION" "$PULUMI_SDK_MOD@v$PULUMI_VERSION"
# see versions.env: the last language host published inside sdk/v3 (its replace is mirrored)
go_wrapper pulumi-language-python "$PULUMI_LANGPY_PKG" "$PULUMI_SDK_MOD@v$PULUMI_LANGUAGE_PYTHON_VERSION"

build_buildkitd() {
  wrapper_build buildkit "$OUT/buildkitd" "osusergo netgo static_build seccomp" \
    "-X $BUILDKIT_MOD/version.Version=$BUILDKIT_VERSION -X $BUILDKIT_MOD/version.Package=$BUILDKIT_MOD" \
    "$BUILDKIT_MOD/cmd/buildkitd"
}

build_buildctl() {
  wrapper_build buildkit "$OUT/buildctl" "osusergo netgo static_build" \
    "-X $BUILDKIT_MOD/version.Version=$BUILDKIT_VERSION -X $BUILDKIT_MOD/version.Package=$BUILDKIT_MOD" \
    "$BUILDKIT_MOD/cmd/buildctl"
}

build_docker_buildx() {
  wrapper_build buildx "$OUT/docker-buildx" "" \
    "-X $BUILDX_MOD/version.Version=$BUILDX_VERSION -X $BUILDX_MOD/version.Package=$BUILDX_MOD" \
    "$BUILDX_MOD/cmd/buildx"
}

build_pulumi() {
  wrapper_build pulumi "$OUT/pulumi" "osusergo,grpcnotrace" \
    "-X $PULUMI_SDK_MOD/go/common/version.Version=v$PULUMI_VERSION" "$PULUMI_PKG_MOD/cmd/pulumi"
  copy_python_scripts "$WRAPPER_DIR"
}

build_pulumi_language_python() {
  wrapper_build pulumi-language-python "$OUT/pulumi-language-python" "osusergo,grpcnotrace" \
    "-X $PULUMI_SDK_MOD/go/common/version.Version=v$PULUMI_LANGUAGE_PYTHON_VERSION" "$PULUMI_LANGPY_PKG"
}

copy_python_scripts() {
  # copy_python_scripts WRAPPER_DIR: the Python scripts that go with the language host and the CLI
  # (pulumi-language-python-exec, and pulumi-resource-pulumi-python for dynamic providers) ship in
  # the sdk/v3 module zip: taken from the wrapper's sdk/v3, so checked against its go.sum too.
  local sdkdir
  sdkdir=$(cd "$1" && mod_download_json "$PULUMI_SDK_MOD" Dir)
  [[ -n "$sdkdir" ]] || { echo "no module directory for $PULUMI_SDK_MOD" >&2; return 1; }
  install -m 0755 "$sdkdir/python/cmd/pulumi-language-python-exec" "$OUT/pulumi-language-python-exec"
  install -m 0755 "$sdkdir/python/dist/pulumi-resource-pulumi-python" "$OUT/pulumi-resource-pulumi-python"
}

step_binaries() {
  build_step buildkitd "$BUILDKIT_VERSION" "$BUILDKIT_MOD@$BUILDKIT_VERSION" build_buildkitd buildkitd
  build_step buildctl "$BUILDKIT_VERSION" "$BUILDKIT_MOD@$BUILDKIT_VERSION" build_buildctl buildctl
  build_step docker-buildx "$BUILDX_VERSION" "$BUILDX_MOD@$BUILDX_VERSION" build_docker_buildx docker-buildx
  build_step pulumi "v$PULUMI_VERSION" "$PULUMI_PKG_MOD@v$PULUMI_VERSION" build_pulumi pulumi \
    pulumi-language-python-exec pulumi-resource-pulumi-python
  build_step pulumi-language-python "v$PULUMI_LANGUAGE_PYTHON_VERSION" \
    "$PULUMI_SDK_MOD@v$PULUMI_LANGUAGE_PYTHON_VERSION" build_pulumi_language_python pulumi-language-python
}
