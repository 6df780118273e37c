#!/usr/bin/env bash
# Offline toolchain bootstrap for buildkit-farm.
#
# Installs Debian packages, builds buildkitd/buildctl, docker-buildx, the Pulumi CLI and the Python
# language host from Go modules (exact pinned versions from
# toolchain/versions.env), caches every binary under ~/.cache/buildkit-farm/<name>-<version>/,
# links them into <repo>/.toolchain/bin, creates <repo>/.venv, installs the tls/command plugins
# (Python substitutes: see step_substitute_providers) into <repo>/.pulumi-home and writes
# <repo>/.toolchain/env.sh.
#
# Idempotent: a second run reuses every cached binary and only checks. Runs as root (apt-get),
# with CI=true and without stdin. A failed binary build is reported (module, version, error),
# the remaining steps go on, and the script exits non-zero at the end.
#
# Environment knobs:
#   BUILDKIT_FARM_CACHE   cache root (default ~/.cache/buildkit-farm)
#   BOOTSTRAP_SKIP_APT=1  skip the apt step
#   PYTHON                interpreter for the venv (default python3)
#   GO                    go binary (default /usr/local/go/bin/go, else go on PATH)
#   BOOTSTRAP_ALLOW_FAIL  space-separated step names whose failure is reported but does not make
#                         the exit status non-zero (e.g. "pulumi-language-python")
set -euo pipefail

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
SCRIPT_DIR=$(dirname "$SCRIPT_PATH")
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

# shellcheck source-path=SCRIPTDIR source=versions.env disable=SC1091
source "$SCRIPT_DIR/versions.env"

CACHE_ROOT=${BUILDKIT_FARM_CACHE:-$HOME/.cache/buildkit-farm}
TOOLCHAIN_DIR=$REPO_ROOT/.toolchain
BIN_DIR=$TOOLCHAIN_DIR/bin
VENV_DIR=$REPO_ROOT/.venv
PULUMI_HOME_DIR=$REPO_ROOT/.pulumi-home
LOG_DIR=$CACHE_ROOT/logs

if [[ -z "${GO:-}" ]]; then
  if [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; else GO=$(command -v go || true); fi
fi
PYTHON=${PYTHON:-python3}

# Go settings shared by every build (exported so the re-invoked build processes see them).
export GOMODCACHE=$CACHE_ROOT/go/mod
export GOCACHE=$CACHE_ROOT/go/build
export GOTOOLCHAIN=${BOOTSTRAP_GOTOOLCHAIN:-local}
export GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
export GO CACHE_ROOT LOG_DIR

# Module paths.
BUILDKIT_MOD=github.com/moby/buildkit
BUILDX_MOD=github.com/docker/buildx
PULUMI_PKG_MOD=github.com/pulumi/pulumi/pkg/v3
PULUMI_SDK_MOD=github.com/pulumi/pulumi/sdk/v3
PULUMI_LANGPY_PKG=$PULUMI_SDK_MOD/python/cmd/pulumi-language-python

# ---------------------------------------------------------------------------------------------
# helpers

log() { printf '==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }

now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

STEP_NAMES=()
STEP_TIMES=()
STEP_RESULTS=()
FAILURES=()
TOLERATED=()
STEP_START=
STEP_NAME=
STEP_RESULT=

step_begin() {
  STEP_NAME=$1
  STEP_RESULT=ok
  STEP_START=$(now)
  log "step $STEP_NAME"
}

step_end() {
  local t
  t=$(elapsed "$STEP_START" "$(now)")
  STEP_NAMES+=("$STEP_NAME")
  STEP_TIMES+=("$t")
  STEP_RESULTS+=("$STEP_RESULT")
  printf '    %s: %ss (%s)\n' "$STEP_NAME" "$t" "$STEP_RESULT"
}

fail() {
  # fail MESSAGE: record a failure of the current step; the script goes on.
  STEP_RESULT=FAILED
  if [[ " ${BOOTSTRAP_ALLOW_FAIL:-} " == *" $STEP_NAME "* ]]; then
    STEP_RESULT="FAILED (allowed)"
    TOLERATED+=("$STEP_NAME: $1")
  else
    FAILURES+=("$STEP_NAME: $1")
  fi
  printf 'ERROR: %s: %s\n' "$STEP_NAME" "$1" >&2
}

# Temp dirs under the cache root (same filesystem, so finished dirs can be renamed into place).
TMP_DIRS=()
cleanup() {
  local d
  for d in "${TMP_DIRS[@]}"; do rm -rf -- "$d"; done
}
trap cleanup EXIT

MK_TMP=
mk_tmp() {
  # mk_tmp PREFIX: sets MK_TMP to a new temp dir, removed at exit (call it in this shell, not
  # in a $(...) subshell, so that the cleanup list sees it).
  mkdir -p "$CACHE_ROOT/tmp"
  MK_TMP=$(mktemp -d "$CACHE_ROOT/tmp/$1.XXXXXX")
  TMP_DIRS+=("$MK_TMP")
}

# ---------------------------------------------------------------------------------------------
# Build functions. Each runs in its own bash process (see run_build) with set -e in force, and
# writes its binaries into the directory $OUT.

go_version_ge() {
  # go_version_ge HAVE WANT: true if HAVE >= WANT (dotted numbers).
  [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]
}

mod_download_json() {
  # mod_download_json MODULE@VERSION FIELD: print a field of `go mod download -json`.
  local out
  if ! out=$("$GO" mod download -json "$1" 2>&1); then
    printf 'go mod download %s: %s\n' "$1" "$(jq -r '.Error // empty' <<<"$out" 2>/dev/null || printf '%s' "$out")" >&2
    return 1
  fi
  jq -r --arg f "$2" '.[$f] // empty' <<<"$out"
}

new_wrapper() {
  # new_wrapper DIR NAME: an empty main module to build other modules' commands.
  local gov
  gov=$("$GO" env GOVERSION)
  gov=${gov#go}
  cat >"$1/go.mod" <<EOF
module buildkit-farm.local/toolchain/$2

go $gov
EOF
}

mirror_directives() {
  # mirror_directives WRAPPER_DIR MODULE@VERSION: copy the module's exclude and (non-local)
  # replace directives into the wrapper: only the main module's directives are applied.
  local gomod
  gomod=$(mod_download_json "$2" GoMod)
  [[ -n "$gomod" ]] || { echo "no go.mod for $2" >&2; return 1; }
  local args=()
  local line
  while IFS= read -r line; do
    [[ -n "$line" ]] && args+=("$line")
  done < <("$GO" mod edit -json "$gomod" | jq -r '
      (.Exclude // [])[] | "-exclude=\(.Path)@\(.Version)"' )
  while IFS= read -r line; do
    [[ -n "$line" ]] && args+=("$line")
  done < <("$GO" mod edit -json "$gomod" | jq -r '
      (.Replace // [])[] | select(.New.Version != null and .New.Version != "")
      | "-replace=\(.Old.Path)\(if .Old.Version then "@" + .Old.Version else "" end)=\(.New.Path)@\(.New.Version)"')
  if ((${#args[@]})); then
    echo "mirroring from $2: ${args[*]}"
    (cd "$1" && "$GO" mod edit "${args[@]}")
  fi
}

wrapper_build() {
  # wrapper_build NAME OUTFILE TAGS LDFLAGS PKG REQUIRE... : build PKG in a wrapper module that
  # requires the given module@version pairs (first one's directives are mirrored).
  local name=$1 outfile=$2 tags=$3 ldflags=$4 pkg=$5
  shift 5
  local w
  mk_tmp "wrap-$name"
  w=$MK_TMP
  new_wrapper "$w" "$name"
  local req
  for req in "$@"; do
    (cd "$w" && "$GO" mod edit -require="$req")
  done
  mirror_directives "$w" "$1"
  cat "$w/go.mod"
  (cd "$w" && "$GO" build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$outfile" "$pkg")
}

build_buildkitd() {
  wrapper_build buildkit "$OUT/buildkitd" "osusergo netgo static_build seccomp" \
    "-X $BUILDKIT_MOD/version.Version=$BUILDKIT_VERSION -X $BUILDKIT_MOD/version.Package=$BUILDKIT_MOD" \
    "$BUILDKIT_MOD/cmd/buildkitd" "$BUILDKIT_MOD@$BUILDKIT_VERSION"
}

build_buildctl() {
  wrapper_build buildkit "$OUT/buildctl" "osusergo netgo static_build" \
    "-X $BUILDKIT_MOD/version.Version=$BUILDKIT_VERSION -X $BUILDKIT_MOD/version.Package=$BUILDKIT_MOD" \
    "$BUILDKIT_MOD/cmd/buildctl" "$BUILDKIT_MOD@$BUILDKIT_VERSION"
}

build_docker_buildx() {
  wrapper_build buildx "$OUT/docker-buildx" "" \
    "-X $BUILDX_MOD/version.Version=$BUILDX_VERSION -X $BUILDX_MOD/version.Package=$BUILDX_MOD" \
    "$BUILDX_MOD/cmd/buildx" "$BUILDX_MOD@$BUILDX_VERSION"
}

build_pulumi() {
  copy_python_scripts
  # pkg/go.mod replaces sdk/v3 => ../sdk (local, skipped by mirror_directives): require the
  # published sdk/v3 at the same version instead; the clipboard replace is mirrored.
  wrapper_build pulumi "$OUT/pulumi" "osusergo,grpcnotrace" \
    "-X $PULUMI_SDK_MOD/go/common/version.Version=v$PULUMI_VERSION" \
    "$PULUMI_PKG_MOD/cmd/pulumi" "$PULUMI_PKG_MOD@v$PULUMI_VERSION" "$PULUMI_SDK_MOD@v$PULUMI_VERSION"
}

build_pulumi_language_python() {
  # see versions.env: the last language host published inside sdk/v3 (its replace is mirrored)
  wrapper_build pulumi-language-python "$OUT/pulumi-language-python" "osusergo,grpcnotrace" \
    "-X $PULUMI_SDK_MOD/go/common/version.Version=v$PULUMI_LANGUAGE_PYTHON_VERSION" \
    "$PULUMI_LANGPY_PKG" "$PULUMI_SDK_MOD@v$PULUMI_LANGUAGE_PYTHON_VERSION"
}

copy_python_scripts() {
  # The Python scripts that go with the language host and the CLI (pulumi-language-python-exec,
  # and pulumi-resource-pulumi-python for dynamic providers) ship in the sdk/v3 module zip.
  local sdkdir
  sdkdir=$(mod_download_json "$PULUMI_SDK_MOD@v$PULUMI_VERSION" Dir)
  install -m 0755 "$sdkdir/python/cmd/pulumi-language-python-exec" "$OUT/pulumi-language-python-exec"
  install -m 0755 "$sdkdir/python/dist/pulumi-resource-pulumi-python" "$OUT/pulumi-resource-pulumi-python"
}

# ---------------------------------------------------------------------------------------------
# Cached build driver.

# cached_build NAME VERSION MODULE@VERSION FUNC BINARY...
# Reuses $CACHE_ROOT/NAME-VERSION/ when it holds every BINARY and its stamp matches; otherwise
# runs FUNC in a fresh bash process writing into a temp dir, and renames that into place.
cached_build() {
  local name=$1 version=$2 modver=$3 func=$4
  shift 4
  local dest=$CACHE_ROOT/$name-$version
  local gov stamp
  gov=$("$GO" env GOVERSION)
  stamp="$modver $gov recipe=3"
  local b ok=1
  for b in "$@"; do [[ -x "$dest/$b" ]] || ok=0; done
  if ((ok)) && [[ "$(cat "$dest/.stamp" 2>/dev/null)" == "$stamp" ]]; then
    STEP_RESULT=cached
    return 0
  fi
  mkdir -p "$LOG_DIR"
  local logf=$LOG_DIR/$name-$version.log
  local tmp
  mk_tmp "out-$name"
  tmp=$MK_TMP
  log "building $name $version from $modver (log: $logf)"
  local rc=0
  OUT=$tmp "$BASH" "$SCRIPT_PATH" __build "$func" >"$logf" 2>&1 || rc=$?
  if ((rc == 0)); then
    for b in "$@"; do
      [[ -x "$tmp/$b" ]] || { echo "build finished but $b is missing" >>"$logf"; rc=1; }
    done
  fi
  if ((rc != 0)); then
    local err
    err=$(grep -v -E '^go: downloading ' "$logf" | tail -n 15 || true)
    fail "build of $name failed: module $modver (exit $rc); log $logf; error:
$err"
    return 1
  fi
  printf '%s\n' "$stamp" >"$tmp/.stamp"
  chmod 0755 "$tmp"
  rm -rf -- "$dest.old"
  if [[ -e "$dest" ]]; then mv -T -- "$dest" "$dest.old"; fi
  mv -T -- "$tmp" "$dest"
  rm -rf -- "$dest.old"
  STEP_RESULT=built
}

# Steps kept in their own files (defined before the internal entry point: build recipes run there).
# shellcheck source-path=SCRIPTDIR source=steps/actionlint.sh disable=SC1091
source "$SCRIPT_DIR/steps/actionlint.sh"
# shellcheck source-path=SCRIPTDIR source=steps/policy_venv.sh disable=SC1091
source "$SCRIPT_DIR/steps/policy_venv.sh"

# ---------------------------------------------------------------------------------------------
# Internal entry point: one build in its own process.
if [[ "${1:-}" == "__build" ]]; then
  : "${OUT:?}"
  "$2"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# Steps.

APT_PACKAGES=(
  runc openssh-server openssh-client iproute2 iptables containernetworking-plugins
  qemu-user-static binfmt-support busybox-static shellcheck uidmap jq curl ca-certificates
  procps util-linux
)

step_apt() {
  step_begin apt
  if [[ "${BOOTSTRAP_SKIP_APT:-}" == 1 ]]; then
    STEP_RESULT=skipped
    step_end
    return
  fi
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" != "ii " ]]; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    STEP_RESULT=present
    step_end
    return
  fi
  log "installing: ${missing[*]}"
  local sudo=()
  if ((EUID != 0)); then
    if command -v sudo >/dev/null; then sudo=(sudo -n); else
      fail "not root and no sudo: cannot install ${missing[*]}"
      step_end
      return
    fi
  fi
  # Do not start services (sshd) from package scripts on a build machine.
  local policy_added=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${sudo[@]}" chmod 0755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  local rc=0
  {
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  } || rc=$?
  if ((policy_added)); then "${sudo[@]}" rm -f /usr/sbin/policy-rc.d; fi
  if ((rc != 0)); then
    fail "apt-get install ${missing[*]} failed (exit $rc)"
  else
    STEP_RESULT=installed
  fi
  step_end
}

GO_OK=0
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
      STEP_RESULT="go $v"
    fi
  fi
  step_end
}

build_step() {
  # build_step NAME VERSION MODULE@VERSION FUNC BINARY...
  step_begin "$1"
  if ((GO_OK)); then
    cached_build "$@" || true
  else
    fail "skipped: no usable go"
  fi
  step_end
}

BUNDLE_DIR=$CACHE_ROOT/pulumi-bundle-v$PULUMI_VERSION

step_link() {
  step_begin link
  mkdir -p "$BIN_DIR"
  # The Pulumi CLI looks for its bundled plugins (language hosts, pulumi-resource-pulumi-python)
  # next to its own resolved executable, also when PULUMI_IGNORE_AMBIENT_PLUGINS is set: gather
  # them with hard links in one bundle dir and link the CLI from there.
  local pdir=$CACHE_ROOT/pulumi-v$PULUMI_VERSION
  local ldir=$CACHE_ROOT/pulumi-language-python-v$PULUMI_LANGUAGE_PYTHON_VERSION
  if [[ -x "$pdir/pulumi" ]]; then
    local tmp f
    mk_tmp pulumi-bundle
    tmp=$MK_TMP
    ln "$pdir/pulumi" "$tmp/pulumi" 2>/dev/null || cp -p "$pdir/pulumi" "$tmp/pulumi"
    for f in "$pdir/pulumi-language-python-exec" "$pdir/pulumi-resource-pulumi-python" \
      "$ldir/pulumi-language-python"; do
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
    STEP_RESULT="missing: ${missing[*]}"
  fi
  step_end
}

VENV_OK=0
step_venv() {
  step_begin venv
  local stamp_file=$VENV_DIR/.bootstrap-requirements.sha256
  local want
  want=$(cd "$REPO_ROOT" && cat requirements-dev.txt requirements.txt | sha256sum | cut -d' ' -f1)
  if [[ -x "$VENV_DIR/bin/python" && "$(cat "$stamp_file" 2>/dev/null)" == "$want" ]]; then
    STEP_RESULT=present
    VENV_OK=1
    step_end
    return
  fi
  local rc=0
  {
    if [[ ! -x "$VENV_DIR/bin/python" ]]; then "$PYTHON" -m venv "$VENV_DIR"; fi &&
      PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$VENV_DIR/bin/python" -m pip install -q -r "$REPO_ROOT/requirements-dev.txt"
  } || rc=$?
  if ((rc != 0)); then
    fail "venv: pip install -r requirements-dev.txt failed (exit $rc)"
  else
    printf '%s\n' "$want" >"$stamp_file"
    STEP_RESULT=installed
    VENV_OK=1
  fi
  step_end
}

sdk_plugin_version() {
  # sdk_plugin_version PYPACKAGE: version in the wheel's pulumi-plugin.json (no import of the SDK).
  "$VENV_DIR/bin/python" - "$1" <<'EOF'
import importlib.util, json, os, sys
spec = importlib.util.find_spec(sys.argv[1])
if spec is None or not spec.submodule_search_locations:
    sys.exit(f"{sys.argv[1]} is not installed in the venv")
path = os.path.join(list(spec.submodule_search_locations)[0], "pulumi-plugin.json")
with open(path) as f:
    print(json.load(f)["version"])
EOF
}

step_plugins() {
  step_begin plugins
  if ((!VENV_OK)); then
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
  # The tls and command plugins: step_substitute_providers.
  step_end
}

# ---------------------------------------------------------------------------------------------
# Substitute tls/command plugins.
#
# The module proxy refuses the Go modules of pulumi-resource-tls and pulumi-resource-command
# (toolchain/NOTES.md), so these two plugins are SUBSTITUTES, not the upstream providers: the
# Python package toolchain/providers/bkf_providers speaks the same gRPC provider protocol and
# implements the resources and properties this program uses. `pulumi plugin install --file`
# copies a single file into $PULUMI_HOME, so each plugin is a small launcher with this
# checkout's absolute paths (venv python, package dir) baked in, written to
# .toolchain/providers/ and (re)installed whenever its content differs from the installed one.

step_substitute_providers() {
  step_begin substitute-providers
  local pulumi=$BIN_DIR/pulumi pkgdir=$REPO_ROOT/toolchain/providers py=$VENV_DIR/bin/python
  if ((!VENV_OK)) || [[ ! -x "$pulumi" ]]; then
    fail "skipped: needs the venv and the pulumi CLI"
    step_end
    return
  fi
  local out
  if ! out=$("$py" -I -c 'import sys; sys.path.insert(0, sys.argv[1]); import bkf_providers.tls, bkf_providers.command' \
    "$pkgdir" 2>&1); then
    fail "the substitute providers do not import with $py: $out"
    step_end
    return
  fi
  local dir=$TOOLCHAIN_DIR/providers entry name pypkg ver want launcher installed tmp pid i port
  local q="'\\''" installed_now=()
  mkdir -p "$dir"
  for entry in "tls:pulumi_tls:$PULUMI_TLS_VERSION" "command:pulumi_command:$PULUMI_COMMAND_VERSION"; do
    IFS=: read -r name pypkg ver <<<"$entry"
    if ! want=$(sdk_plugin_version "$pypkg" 2>&1); then
      fail "cannot read $pypkg/pulumi-plugin.json: $want"
      continue
    fi
    if [[ "$want" != "$ver" ]]; then
      fail "$pypkg in the venv announces plugin $name $want, but toolchain/versions.env pins $ver: pin them equal"
      continue
    fi
    launcher=$dir/pulumi-resource-$name
    cat >"$launcher.tmp" <<EOF
#!/bin/sh
# pulumi-resource-$name $ver: a SUBSTITUTE plugin (Python, toolchain/providers/bkf_providers),
# not the upstream provider. Generated by toolchain/bootstrap.sh; paths are this checkout's.
exec '${py//\'/$q}' -I -c 'import sys; sys.path.insert(0, sys.argv.pop(1)); from bkf_providers.__main__ import main; main()' '${pkgdir//\'/$q}' $name "\$@"
EOF
    chmod 0755 "$launcher.tmp"
    if cmp -s "$launcher.tmp" "$launcher"; then rm -f "$launcher.tmp"; else mv -f "$launcher.tmp" "$launcher"; fi
    installed=$PULUMI_HOME_DIR/plugins/resource-$name-v$ver/pulumi-resource-$name
    if [[ -x "$installed" ]] && cmp -s "$launcher" "$installed"; then
      continue
    fi
    if ! out=$(PULUMI_HOME=$PULUMI_HOME_DIR PULUMI_SKIP_UPDATE_CHECK=true \
      "$pulumi" plugin install resource "$name" "$ver" --file "$launcher" --reinstall 2>&1); then
      fail "pulumi plugin install resource $name $ver --file $launcher failed: $out"
      continue
    fi
    # The engine's contract: the plugin prints its port on stdout and serves until killed.
    mk_tmp "plugin-$name"
    tmp=$MK_TMP
    "$installed" </dev/null >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    port=
    for ((i = 0; i < 150; i++)); do
      port=$(head -n1 "$tmp/out")
      [[ -n "$port" ]] && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [[ ! "$port" =~ ^[0-9]+$ ]]; then
      fail "installed plugin $installed did not announce a port: $(tail -n 5 "$tmp/err")"
      continue
    fi
    installed_now+=("$name")
  done
  if ((${#installed_now[@]})) && [[ "$STEP_RESULT" == ok ]]; then
    STEP_RESULT="installed ${installed_now[*]}"
  fi
  step_end
}

step_env() {
  step_begin env.sh
  mkdir -p "$TOOLCHAIN_DIR"
  local tmp=$TOOLCHAIN_DIR/env.sh.tmp
  cat >"$tmp" <<EOF
# Generated by toolchain/bootstrap.sh: source it (". .toolchain/env.sh").
case ":\$PATH:" in
  *":$BIN_DIR:"*) ;;
  *) PATH="$BIN_DIR:$VENV_DIR/bin:\$PATH" ;;
esac
export PATH
export PULUMI_HOME="$PULUMI_HOME_DIR"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_IGNORE_AMBIENT_PLUGINS=true
export PULUMI_SKIP_CONFIRMATIONS=true
EOF
  mv -f -- "$tmp" "$TOOLCHAIN_DIR/env.sh"
  step_end
}

summary() {
  local total
  total=$(elapsed "$T0" "$(now)")
  printf '\n%-28s %10s  %s\n' step seconds result
  local i
  for i in "${!STEP_NAMES[@]}"; do
    printf '%-28s %10s  %s\n' "${STEP_NAMES[$i]}" "${STEP_TIMES[$i]}" "${STEP_RESULTS[$i]}"
  done
  printf '%-28s %10s\n' total "$total"
  local f
  if ((${#TOLERATED[@]})); then
    printf '\n%d failure(s) allowed by BOOTSTRAP_ALLOW_FAIL:\n' "${#TOLERATED[@]}" >&2
    for f in "${TOLERATED[@]}"; do printf -- '- %s\n' "$f" >&2; done
  fi
  if ((${#FAILURES[@]})); then
    printf '\n%d failure(s):\n' "${#FAILURES[@]}" >&2
    for f in "${FAILURES[@]}"; do printf -- '- %s\n' "$f" >&2; done
    return 1
  fi
  printf '\nok: source %s\n' "$TOOLCHAIN_DIR/env.sh"
}

main() {
  T0=$(now)
  log "buildkit-farm toolchain bootstrap (repo $REPO_ROOT, cache $CACHE_ROOT)"
  # Leftovers of interrupted runs (a day old, so a concurrent run is left alone).
  if [[ -d "$CACHE_ROOT/tmp" ]]; then
    find "$CACHE_ROOT/tmp" -mindepth 1 -maxdepth 1 -mmin +1440 -exec rm -rf {} + || true
  fi
  step_apt
  step_go
  build_step buildkitd "$BUILDKIT_VERSION" "$BUILDKIT_MOD@$BUILDKIT_VERSION" build_buildkitd buildkitd
  build_step buildctl "$BUILDKIT_VERSION" "$BUILDKIT_MOD@$BUILDKIT_VERSION" build_buildctl buildctl
  build_step docker-buildx "$BUILDX_VERSION" "$BUILDX_MOD@$BUILDX_VERSION" build_docker_buildx docker-buildx
  build_step pulumi "v$PULUMI_VERSION" "$PULUMI_PKG_MOD@v$PULUMI_VERSION" build_pulumi pulumi \
    pulumi-language-python-exec pulumi-resource-pulumi-python
  build_step pulumi-language-python "v$PULUMI_LANGUAGE_PYTHON_VERSION" "$PULUMI_SDK_MOD@v$PULUMI_LANGUAGE_PYTHON_VERSION" \
    build_pulumi_language_python pulumi-language-python
  step_actionlint
  step_link
  step_venv
  step_policy_venv
  step_substitute_providers
  step_plugins
  step_env
  summary
}

main "$@"
