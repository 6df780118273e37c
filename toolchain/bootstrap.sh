#!/usr/bin/env bash
# Offline toolchain bootstrap for buildkit-farm.
#
# Installs Debian packages, builds buildkitd/buildctl, docker-buildx, the Pulumi CLI and the Python
# language host from Go modules (exact pinned versions from toolchain/versions.env, every module
# pinned by hash in the committed wrapper modules toolchain/modules/<name>/go.sum), caches every
# binary under ~/.cache/buildkit-farm/<name>-<version>/, links them into <repo>/.toolchain/bin,
# creates <repo>/.venv, installs the tls/command plugins (Python substitutes:
# toolchain/install_providers.py) into <repo>/.pulumi-home and writes <repo>/.toolchain/env.sh.
#
# Idempotent: a second run reuses every cached binary and only checks. Runs as root (apt-get),
# with CI=true and without stdin. A failed step is reported (for a build: module, version,
# error), the remaining steps go on, and the script exits non-zero at the end.
#
# This file is the driver: settings, then main() runs the steps in order. Each step is a
# function step_<name> in toolchain/steps/<name>.sh; toolchain/lib/common.sh holds the step
# bookkeeping and toolchain/lib/gobuild.sh the cached Go builds.
#
# Parts: `bootstrap.sh [PART...]` builds only what the named parts need (default: all):
#   farm      the local farm (make farm, make bench, make reliability): Debian runtime packages,
#             buildkitd, buildctl, buildx, the Pulumi CLI and language host, the registry, the venv,
#             the substitute plugins
#   test      farm plus what only the test tiers use: actionlint, the policy pack's venv, the EC2
#             tier's emulator venv, the Debian packages of the EC2 and --load tiers
#   cluster   farm plus the single-node Kubernetes of the cluster tier (kubernetes, etcd,
#             containerd, rootlesskit; by far the longest cold build) and the real pulumi-kubernetes
#             provider, installed as the `kubernetes` plugin
#   all       every part (make test, .ci/run)
#
# Environment knobs:
#   BUILDKIT_FARM_CACHE   cache root (default ~/.cache/buildkit-farm)
#   BOOTSTRAP_SKIP_APT=1  skip the apt step
#   PYTHON                interpreter for the venv (default python3)
#   GO                    go binary (default /usr/local/go/bin/go, else go on PATH)
#   BOOTSTRAP_GOTOOLCHAIN GOTOOLCHAIN for the builds (default local: no toolchain download)
#   BOOTSTRAP_ALLOW_FAIL  space-separated step names whose failure is reported but does not make
#                         the exit status non-zero (e.g. "pulumi-language-python")
#
# Sourced files are found next to this script (for shellcheck -x, from any working directory).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
SCRIPT_DIR=$(dirname "$SCRIPT_PATH")
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

# shellcheck source=versions.env
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
# -mod=readonly: a build takes its module versions from the committed wrapper module
# (toolchain/modules, lib/gomodules.sh) and resolves nothing; only toolchain/lock.sh go may.
export GOMODCACHE=$CACHE_ROOT/go/mod
export GOCACHE=$CACHE_ROOT/go/build
export GOTOOLCHAIN=${BOOTSTRAP_GOTOOLCHAIN:-local}
export GOFLAGS="-mod=readonly -buildvcs=false"
export CGO_ENABLED=0
export GO CACHE_ROOT LOG_DIR

# shellcheck source=lib/common.sh
source "$SCRIPT_DIR/lib/common.sh"
# shellcheck source=lib/gobuild.sh
source "$SCRIPT_DIR/lib/gobuild.sh"
# shellcheck source=lib/gomodules.sh
source "$SCRIPT_DIR/lib/gomodules.sh"
# shellcheck source=steps/apt.sh
source "$SCRIPT_DIR/steps/apt.sh"
# shellcheck source=steps/go.sh
source "$SCRIPT_DIR/steps/go.sh"
# shellcheck source=steps/binaries.sh
source "$SCRIPT_DIR/steps/binaries.sh"
# shellcheck source=steps/link.sh
source "$SCRIPT_DIR/steps/link.sh"
# shellcheck source=steps/venv.sh
source "$SCRIPT_DIR/steps/venv.sh"
# shellcheck source=steps/providers.sh
source "$SCRIPT_DIR/steps/providers.sh"
# shellcheck source=steps/plugins.sh
source "$SCRIPT_DIR/steps/plugins.sh"
# shellcheck source=steps/env.sh
source "$SCRIPT_DIR/steps/env.sh"
# shellcheck source=steps/actionlint.sh
source "$SCRIPT_DIR/steps/actionlint.sh"
# shellcheck source=steps/policy_venv.sh
source "$SCRIPT_DIR/steps/policy_venv.sh"
# shellcheck source=steps/registry.sh
source "$SCRIPT_DIR/steps/registry.sh"
# shellcheck source=steps/aws_emu_venv.sh
source "$SCRIPT_DIR/steps/aws_emu_venv.sh"
# shellcheck source=steps/cluster.sh
source "$SCRIPT_DIR/steps/cluster.sh"

trap cleanup EXIT

# A build process started by cached_build (`bootstrap.sh __build FUNC`) runs its recipe and
# exits here, with every library and step above sourced; so do `__lock_go` (toolchain/lock.sh go)
# and `__check_go` (the committed wrapper modules against versions.env).
build_reentry "$@"
go_modules_reentry "$@"

main() {
  select_parts "$@"
  T0=$(now)
  log "buildkit-farm toolchain bootstrap (parts: ${PARTS[*]}; repo $REPO_ROOT, cache $CACHE_ROOT)"
  clean_stale_tmp
  step_apt
  step_go
  # the venv is made beside the Go builds (steps/venv.sh); step_venv below waits for it
  venv_begin
  step_binaries
  if want test; then step_actionlint; fi
  step_registry
  if want cluster; then step_cluster; fi
  step_link
  step_venv
  if want test; then
    step_policy_venv
    step_aws_emu_venv
  fi
  step_providers
  step_plugins
  if want cluster; then step_kubernetes_plugin; fi
  step_env
  summary
}

main "$@"
