#!/usr/bin/env bash
# Regenerates the pinned-by-hash inputs of the toolchain (docs/toolchain.md, "Pins and hashes"):
#
#   toolchain/lock.sh python [UV-OPTION...]
#       each hand-edited requirements .in file -> its .txt lock: every package, transitive ones
#       included, pinned (==) with the sha256 of each of its distribution files, resolved for
#       this machine's interpreter ($PYTHON, default python3: CPython 3.11 on linux x86_64).
#       Versions already in a lock are kept (uv prefers them); to bump one, edit its pin in the
#       .in file, or pass e.g. `--upgrade-package rich` for a transitive one.
#       Uses $UV (default: the dev venv's .venv/bin/uv, pinned in requirements-dev.in).
#   toolchain/lock.sh go [NAME...]
#       each Go wrapper module (toolchain/modules/NAME/go.mod + go.sum; default: all of them)
#       regenerated at the versions in versions.env, the way lib/gobuild.sh builds: see
#       lib/gomodules.sh. Downloads into the bootstrap's module cache (GOMODCACHE).
#
# The bootstrap never resolves: it installs the .txt locks with `pip --require-hashes` and builds
# from the committed go.mod/go.sum with -mod=readonly, so a changed upstream artifact fails the build.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

# hand-edited input -> generated lock, in this order: requirements-dev.in constrains itself to
# requirements.txt, so that the dev venv has the runtime packages at the runtime lock's versions.
PY_LOCKS=(
  requirements.in:requirements.txt
  requirements-dev.in:requirements-dev.txt
  review/policy/requirements.in:review/policy/requirements.txt
  toolchain/aws-emu/requirements.in:toolchain/aws-emu/requirements.txt
  tests/ec2/requirements-node.in:tests/ec2/requirements-node.txt
)

lock_python() {
  local uv=${UV:-$REPO_ROOT/.venv/bin/uv} python=${PYTHON:-python3} pair in out
  [[ -x "$uv" ]] || command -v "$uv" >/dev/null || {
    echo "lock.sh: no uv at $uv (run toolchain/bootstrap.sh, or set UV=)" >&2
    exit 1
  }
  cd "$REPO_ROOT"
  for pair in "${PY_LOCKS[@]}"; do
    in=${pair%%:*}
    out=${pair#*:}
    echo "==> $in -> $out"
    "$uv" pip compile --quiet --generate-hashes --python "$python" \
      --custom-compile-command "toolchain/lock.sh python" --output-file "$out" "$@" "$in"
  done
}

usage() {
  echo "usage: toolchain/lock.sh python [UV-OPTION...] | go [NAME...]" >&2
  exit 2
}

case ${1:-} in
  python)
    shift
    lock_python "$@"
    ;;
  go)
    shift
    # the Go part needs the bootstrap's settings and libraries (GO, GOMODCACHE, wrapper recipes)
    exec bash "$SCRIPT_DIR/bootstrap.sh" __lock_go "$@"
    ;;
  *) usage ;;
esac
