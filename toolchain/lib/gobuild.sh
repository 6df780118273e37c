# shellcheck shell=bash
# Building Go commands from pinned modules, cached per binary.
#
# cached_build runs a build recipe (a function writing its binaries into $OUT) as
# `bash bootstrap.sh __build FUNC`: a fresh process, because the driver calls it where errexit is
# off (`|| rc=$?`), and a recipe must stop at its first failing command. That process sources
# the same libraries and steps (so the recipes are defined) and build_reentry runs FUNC.
# Uses bootstrap.sh's GO, CACHE_ROOT, LOG_DIR and SCRIPT_PATH, go_ok (steps/go.sh) and
# pinned_wrapper (lib/gomodules.sh).

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

wrapper_build() {
  # wrapper_build NAME OUTFILE TAGS LDFLAGS PKG: build PKG in a copy of the committed wrapper module
  # NAME (lib/gomodules.sh). -mod=readonly: go resolves nothing and fails on any module whose
  # content differs from go.sum. No debug info (-dwarf=false for every package, -s -w for the
  # link): these binaries are run, never stepped through in a debugger, and panics still print
  # their stacks; the compile and link do less (docker-buildx from an empty build cache: 82.3 s
  # against 92.8 s; docs/toolchain.md). The bytes differ from a build with debug info, so the
  # cache stamp's recipe went to 4 with it (cached_build).
  local name=$1 outfile=$2 tags=$3 ldflags=$4 pkg=$5
  [[ " $ldflags " == *" -s -w "* ]] || ldflags="-s -w${ldflags:+ $ldflags}"
  pinned_wrapper "$name"
  (cd "$WRAPPER_DIR" && "$GO" build -mod=readonly -trimpath -gcflags=all=-dwarf=false -tags "$tags" \
    -ldflags "$ldflags" -o "$outfile" "$pkg")
}

# cached_build NAME VERSION MODULE@VERSION FUNC BINARY...
# Reuses $CACHE_ROOT/NAME-VERSION/ when it holds every BINARY and its stamp matches; otherwise
# runs FUNC in a fresh bash process writing into a temp dir, and renames that into place.
# The stamp and the directory names are what existing caches hold: changing either rebuilds
# every binary (every part cold: 1,382.5 s on 2 cores); bump recipe= when a recipe changes what it
# builds (recipe=4: no debug info, wrapper_build), so that a stamp names the bytes. A BINARY
# added to a step under the same stamp is built alone (the others are carried over).
cached_build() {
  local name=$1 version=$2 modver=$3 func=$4
  shift 4
  local dest=$CACHE_ROOT/$name-$version
  local gov stamp
  gov=$("$GO" env GOVERSION)
  stamp="$modver $gov recipe=4"
  local b ok=1 same=0
  for b in "$@"; do [[ -x "$dest/$b" ]] || ok=0; done
  [[ "$(cat "$dest/.stamp" 2>/dev/null)" == "$stamp" ]] && same=1
  if ((ok && same)); then
    step_result cached
    return 0
  fi
  mkdir -p "$LOG_DIR"
  local logf=$LOG_DIR/$name-$version.log
  local tmp
  mk_tmp "out-$name"
  tmp=$MK_TMP
  if ((same)); then
    # same module, Go and recipe, one more binary asked for (a command added to a step): the
    # ones there are what this build would make, so they go in first and a recipe that skips
    # what $OUT holds (build_kubernetes) builds only the new one
    for b in "$@"; do [[ ! -x "$dest/$b" ]] || cp -p -- "$dest/$b" "$tmp/"; done
  fi
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
  step_result built
}

build_step() {
  # build_step NAME VERSION MODULE@VERSION FUNC BINARY...: one step (one table row) per binary.
  step_begin "$1"
  if go_ok; then
    cached_build "$@" || true
  else
    fail "skipped: no usable go"
  fi
  step_end
}

linked_build_step() {
  # linked_build_step NAME VERSION MODULE FUNC: a tool built like the other binaries (build_step:
  # cached under $CACHE_ROOT/NAME-VERSION/ by FUNC), then linked into .toolchain/bin; a failed
  # build leaves no stale link.
  local name=$1 version=$2 bin=$CACHE_ROOT/$1-$2/$1
  build_step "$name" "$version" "$3@$version" "$4" "$name"
  mkdir -p "$BIN_DIR"
  if [[ -x "$bin" ]]; then ln -sfn "$bin" "$BIN_DIR/$name"; else rm -f "$BIN_DIR/$name"; fi
}

build_reentry() {
  # build_reentry ARGS...: if the script was invoked as `__build FUNC` (by cached_build), run
  # that recipe with errexit in force and exit; otherwise return and let the driver go on.
  [[ "${1:-}" == __build ]] || return 0
  : "${OUT:?}"
  "$2"
  exit 0
}
