# shellcheck shell=bash
# The Go wrapper modules, pinned: every binary is built in a wrapper module (a main module with
# no code of its own that requires the module of the command), and each wrapper's go.mod and
# go.sum are committed under toolchain/modules/<name>/. A build copies them and runs with
# -mod=readonly: nothing is resolved at build time, and go checks every module it downloads or
# takes from the module cache against go.sum, so a changed upstream artifact fails the build.
#
# A step declares its wrappers with go_wrapper (at source time, from versions.env);
# `toolchain/lock.sh go [NAME...]` regenerates them (lock_go_module: a fresh wrapper, the
# required module's exclude/replace directives mirrored, a tools.go importing the built packages,
# `go mod tidy`); check_go_module is what a build and tests/toolchain check against versions.env.
# Uses bootstrap.sh's GO, REPO_ROOT and GO_MIN_VERSION, lib/common.sh's mk_tmp and gobuild.sh's
# mod_download_json.

MODULES_DIR=$REPO_ROOT/toolchain/modules

WRAPPERS=()
declare -A WRAPPER_REQUIRES=() WRAPPER_PACKAGES=() WRAPPER_HOOK=()

go_wrapper() {
  # go_wrapper NAME "PKG..." MODULE@VERSION...: the wrapper NAME requires these module versions
  # (the first one's directives are mirrored into it) and builds these packages.
  local name=$1
  WRAPPERS+=("$name")
  WRAPPER_PACKAGES[$name]=$2
  shift 2
  WRAPPER_REQUIRES[$name]="$*"
}

go_wrapper_hook() {
  # go_wrapper_hook NAME FUNC: lock_go_module runs `FUNC WRAPPER_DIR` after mirroring the directives
  # (what a wrapper needs beyond them, e.g. the kubernetes staging replaces).
  WRAPPER_HOOK[$1]=$2
}

check_go_module() {
  # check_go_module NAME: the committed wrapper requires exactly the versions its step asks for
  # (versions.env), and its go.sum holds the hash of each required module's content and go.mod.
  # Prints one line per problem and returns 1 if there is any.
  local name=$1 dir=$MODULES_DIR/$1 req mod ver have bad=0
  if [[ -z "${WRAPPER_REQUIRES[$name]+set}" ]]; then
    echo "no Go wrapper named $name (declared: ${WRAPPERS[*]})"
    return 1
  fi
  if [[ ! -f "$dir/go.mod" || ! -f "$dir/go.sum" ]]; then
    echo "toolchain/modules/$name: no go.mod and go.sum; run toolchain/lock.sh go $name"
    return 1
  fi
  for req in ${WRAPPER_REQUIRES[$name]}; do
    mod=${req%@*}
    ver=${req##*@}
    have=$("$GO" mod edit -json "$dir/go.mod" | jq -r --arg m "$mod" '(.Require // [])[] | select(.Path == $m) | .Version')
    if [[ "$have" != "$ver" ]]; then
      echo "toolchain/modules/$name/go.mod requires $mod ${have:-(nothing)}, versions.env asks for $ver; run toolchain/lock.sh go $name"
      bad=1
    elif [[ "$(awk -v m="$mod" -v v="$ver" '$1 == m && ($2 == v || $2 == v "/go.mod") && $3 ~ /^h1:/' \
      "$dir/go.sum" | wc -l)" != 2 ]]; then
      echo "toolchain/modules/$name/go.sum has no hash of $mod $ver; run toolchain/lock.sh go $name"
      bad=1
    fi
  done
  return "$bad"
}

WRAPPER_DIR=
pinned_wrapper() {
  # pinned_wrapper NAME: sets WRAPPER_DIR to a fresh copy of the committed wrapper module NAME,
  # after check_go_module (a build at a version other than the lock's would be misnamed).
  local problems
  if ! problems=$(check_go_module "$1"); then
    echo "$problems" >&2
    return 1
  fi
  mk_tmp "wrap-$1"
  WRAPPER_DIR=$MK_TMP
  cp -- "$MODULES_DIR/$1"/go.mod "$MODULES_DIR/$1"/go.sum "$WRAPPER_DIR/"
  cat "$WRAPPER_DIR/go.mod"
}

new_wrapper() {
  # new_wrapper DIR NAME: an empty main module to build other modules' commands. Its go line is
  # the oldest Go the pins allow (GO_MIN_VERSION), not the Go that ran toolchain/lock.sh: a
  # committed wrapper must build with any Go the bootstrap accepts.
  printf 'module buildkit-farm.local/toolchain/%s\n\ngo %s\n' "$2" "$GO_MIN_VERSION" >"$1/go.mod"
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

lock_go_module() {
  # lock_go_module NAME: regenerate toolchain/modules/NAME/{go.mod,go.sum,tools.go} at the versions
  # the step declares. `go mod tidy` keeps exactly the modules that provide the packages tools.go
  # imports (for every platform and build tag), at the versions of the required module's graph.
  local name=$1 w req p
  [[ -n "${WRAPPER_REQUIRES[$name]+set}" ]] || { echo "no Go wrapper named $name (declared: ${WRAPPERS[*]})" >&2; return 1; }
  mk_tmp "lock-$name"
  w=$MK_TMP
  new_wrapper "$w" "$name"
  for req in ${WRAPPER_REQUIRES[$name]}; do
    (cd "$w" && "$GO" mod edit -require="$req")
  done
  req=${WRAPPER_REQUIRES[$name]%% *}
  mirror_directives "$w" "$req"
  if [[ -n "${WRAPPER_HOOK[$name]:-}" ]]; then "${WRAPPER_HOOK[$name]}" "$w"; fi
  {
    printf '//go:build tools\n\n// The packages toolchain/bootstrap.sh builds from this wrapper module; generated by\n'
    printf '// toolchain/lock.sh go %s (go mod tidy keeps the modules they need, go.sum their hashes).\n' "$name"
    printf 'package tools\n\nimport (\n'
    for p in ${WRAPPER_PACKAGES[$name]}; do printf '\t_ "%s"\n' "$p"; done
    printf ')\n'
  } >"$w/tools.go"
  # the build list as a plain wrapper resolves it (what the builds used before the lock) ...
  local before after
  before=$(cd "$w" && build_modules -mod=mod "$name") || return 1
  (cd "$w" && GOFLAGS=-mod=mod "$GO" mod tidy)
  # ... must be the one the tidied wrapper gives: tidy adds the modules that other platforms and
  # build tags need, which must not move any version the build uses
  after=$(cd "$w" && build_modules -mod=readonly "$name") || return 1
  if [[ "$before" != "$after" ]]; then
    echo "toolchain/modules/$name: go mod tidy changed the modules the build uses:" >&2
    diff <(echo "$before") <(echo "$after") >&2 || true
    return 1
  fi
  mkdir -p "$MODULES_DIR/$name"
  cp -- "$w/go.mod" "$w/go.sum" "$w/tools.go" "$MODULES_DIR/$name/"
  echo "toolchain/modules/$name: $(grep -c . "$w/go.sum") go.sum lines"
}

build_modules() {
  # build_modules -mod=MODE NAME: "path version", or "path => replacement version", of every module
  # that provides a package of NAME's build (the packages it builds and their dependencies, default
  # build tags). A replaced module's own selected version is left out: its content is the
  # replacement's (kubernetes' staging modules are required at v0.0.0, or after tidy at the version
  # the published ones require, and replaced by the published v0.<minor>.<patch> either way).
  local mode=$1 name=$2
  # shellcheck disable=SC2086 # the package list is space-separated import paths
  "$GO" list "$mode" -deps \
    -f '{{with .Module}}{{.Path}}{{with .Replace}} => {{.Path}} {{.Version}}{{else}} {{.Version}}{{end}}{{end}}' \
    ${WRAPPER_PACKAGES[$name]} | sort -u
}

go_modules_reentry() {
  # go_modules_reentry ARGS...: `bootstrap.sh __lock_go [NAME...]` (toolchain/lock.sh go) and
  # `bootstrap.sh __check_go [NAME...]` run here and exit; otherwise return.
  local cmd=${1:-} name rc=0
  [[ "$cmd" == __lock_go || "$cmd" == __check_go ]] || return 0
  shift
  if (($# == 0)); then set -- "${WRAPPERS[@]}"; fi
  for name in "$@"; do
    if [[ "$cmd" == __lock_go ]]; then
      echo "==> $name"
      lock_go_module "$name" || rc=1
    else
      check_go_module "$name" || rc=1
    fi
  done
  exit "$rc"
}
