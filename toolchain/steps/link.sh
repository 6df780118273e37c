# shellcheck shell=bash
# Step link: symlink the cached binaries into .toolchain/bin (and docker-buildx as a docker CLI
# plugin); a missing binary is reported in the step result, not as a failure (its build step
# already failed).

BUNDLE_DIR=$CACHE_ROOT/pulumi-bundle-v$PULUMI_VERSION

step_link() {
  step_begin link
  mkdir -p "$BIN_DIR"
  # The Pulumi CLI looks for its bundled plugins (language hosts, pulumi-resource-pulumi-python)
  # next to its own resolved executable, also when PULUMI_IGNORE_AMBIENT_PLUGINS is set: gather
  # them with hard links in one bundle dir and link the CLI from there.
  local pdir=$CACHE_ROOT/pulumi-v$PULUMI_VERSION
  local ldir=$CACHE_ROOT/pulumi-language-python-v$PULUMI_LANGUAGE_PYTHON_VERSION
  local sources=("$pdir/pulumi" "$pdir/pulumi-language-python-exec" "$pdir/pulumi-resource-pulumi-python"
    "$ldir/pulumi-language-python")
  # An up-to-date bundle is left as it is: it is shared by every clone, and swapping it while a
  # pulumi command of another clone runs makes that command lose its language host.
  local current=1 f
  for f in "${sources[@]}"; do
    if [[ -x "$f" ]] && ! [[ "$BUNDLE_DIR/${f##*/}" -ef "$f" ]] && ! cmp -s "$f" "$BUNDLE_DIR/${f##*/}"; then
      current=0
    fi
  done
  if [[ -x "$pdir/pulumi" && $current == 0 ]]; then
    local tmp
    mk_tmp pulumi-bundle
    tmp=$MK_TMP
    ln "$pdir/pulumi" "$tmp/pulumi" 2>/dev/null || cp -p "$pdir/pulumi" "$tmp/pulumi"
    for f in "${sources[@]:1}"; do
      if [[ -x "$f" ]]; then
        ln "$f" "$tmp/${f##*/}" 2>/dev/null || cp -p "$f" "$tmp/${f##*/}"
      fi
    done
    chmod 0755 "$tmp"
    rm -rf -- "$BUNDLE_DIR.old"
    if [[ -e "$BUNDLE_DIR" ]]; then mv -T -- "$BUNDLE_DIR" "$BUNDLE_DIR.old"; fi
    mv -T -- "$tmp" "$BUNDLE_DIR"
    rm -rf -- "$BUNDLE_DIR.old"
  fi
  local targets=(
    "pulumi:$BUNDLE_DIR/pulumi"
    "pulumi-language-python:$BUNDLE_DIR/pulumi-language-python"
    "pulumi-language-python-exec:$BUNDLE_DIR/pulumi-language-python-exec"
    "pulumi-resource-pulumi-python:$BUNDLE_DIR/pulumi-resource-pulumi-python"
    "buildkitd:$CACHE_ROOT/buildkitd-$BUILDKIT_VERSION/buildkitd"
    "buildctl:$CACHE_ROOT/buildctl-$BUILDKIT_VERSION/buildctl"
    "docker-buildx:$CACHE_ROOT/docker-buildx-$BUILDX_VERSION/docker-buildx"
  )
  local t name target missing=()
  for t in "${targets[@]}"; do
    name=${t%%:*}
    target=${t#*:}
    if [[ -x "$target" ]]; then
      ln -sfn "$target" "$BIN_DIR/$name"
    else
      rm -f "$BIN_DIR/$name"
      missing+=("$name")
    fi
  done
  local bx=$CACHE_ROOT/docker-buildx-$BUILDX_VERSION/docker-buildx
  if [[ -x "$bx" ]]; then
    mkdir -p "$HOME/.docker/cli-plugins"
    ln -sfn "$bx" "$HOME/.docker/cli-plugins/docker-buildx"
  fi
  if ((${#missing[@]})); then
    step_result "missing: ${missing[*]}"
  fi
  step_end
}
