#!/usr/bin/env bash
# The local farm (`make farm`): three test hosts on this machine (h1, h2, h16), a real
# `pulumi up` of the ssh backend (stack "local", Pulumi.local.yaml) with a local
# file backend and a generated passphrase, then a multi-platform sample build
# through the builder the stack created, pushed as a two-platform image to a local registry
# (local/registry.sh: TLS with a local CA that the stack config trusts through `registries:`).
#
#   local/farm.sh up       hosts + registry + pulumi up + sample build (pushed)
#   local/farm.sh build    the sample build again (linux/amd64 + linux/arm64)
#   local/farm.sh down     pulumi destroy + registry stopped + hosts down (build cache images and
#                          the registry's data stay)
#   local/farm.sh preview  pulumi preview --diff of the local stack (extra args pass through)
#   local/farm.sh env      print the exports that point pulumi/buildx at this farm
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STATE=${BKF_LOCAL_STATE:-$ROOT/.state/local}
STACK=${BKF_STACK:-local}
[ -f .toolchain/env.sh ] || { echo "run toolchain/bootstrap.sh (or: make toolchain) first" >&2; exit 1; }
# shellcheck source=/dev/null
. .toolchain/env.sh

export PULUMI_BACKEND_URL="file://$STATE/backend"
export PULUMI_CONFIG_PASSPHRASE_FILE="$STATE/passphrase"
export BUILDX_CONFIG="$STATE/buildx"
export BUILDX_BUILDER=bkf-local
# the farm's registry: on the test bridge, so the nodes (10.77.0.11, .12) and this machine reach it
REGISTRY=${BKF_REGISTRY:-10.77.0.1:5443}
export BKF_REGISTRY_DIR=$STATE/registry
SAMPLE_IMAGE=$REGISTRY/bkf/sample:latest

log() { printf '\n== %s\n' "$*"; }

prepare() {
  mkdir -p "$STATE/backend" "$STATE/artifacts"
  if [ ! -s "$STATE/passphrase" ]; then
    (umask 077; head -c 32 /dev/urandom | base64 >"$STATE/passphrase")
  fi
  log "test hosts"
  bash local/testhosts.sh up
  log "registry on $REGISTRY (TLS, local CA $BKF_REGISTRY_DIR/ca.pem)"
  bash local/registry.sh up farm "$REGISTRY"
  log "buildkit artifact for hosts without internet"
  bash local/artifact.sh "$STATE/artifacts" "$(python -c 'from components.versions import BUILDKIT_VERSION as v; print(v)')"
  stack_config
  if ! pulumi stack select "$STACK" --non-interactive >/dev/null 2>&1; then
    # `stack init` writes the passphrase salt into Pulumi.<stack>.yaml of the project it runs
    # in: run it in a scratch copy of the project so the tracked Pulumi.local.yaml stays clean
    # (the salt for this machine's passphrase then lands in $CONFIG, see stack_config).
    local scratch
    scratch=$(mktemp -d)
    cp Pulumi.yaml "$scratch/"
    (cd "$scratch" && pulumi stack init "$STACK" --non-interactive >/dev/null)
    rm -rf "$scratch"
  fi
}

# The stack's config: Pulumi.local.yaml (tracked, no secrets) plus this machine's
# passphrase salt, kept in $STATE; every pulumi command gets it with --config-file.
CONFIG="$STATE/Pulumi.$STACK.yaml"
stack_config() {
  local salt=""
  [ -f "$CONFIG" ] && salt=$(grep '^encryptionsalt:' "$CONFIG" || true)
  { [ -z "$salt" ] || echo "$salt"; grep -v '^encryptionsalt:' "Pulumi.$STACK.yaml"; } >"$CONFIG.tmp"
  # every node trusts the local registry's CA (made on this machine, so not in the tracked file)
  python - "$CONFIG.tmp" "$REGISTRY" "$(bash local/registry.sh ca)" <<'EOF'
import sys, yaml
path, registry, ca = sys.argv[1], sys.argv[2], open(sys.argv[3]).read()
doc = yaml.safe_load(open(path))
doc["config"]["buildkit-farm:registries"] = {registry: {"ca": ca}}
open(path, "w").write(yaml.safe_dump(doc, sort_keys=False))
EOF
  mv "$CONFIG.tmp" "$CONFIG"
}

sample_build() {
  log "sample build through the farm (builder $BUILDX_BUILDER)"
  local ctx="$STATE/sample-context" out="$STATE/sample-out"
  mkdir -p "$ctx"
  cp local/sample/Dockerfile "$ctx/"
  bash local/rootfs.sh "$ctx"
  rm -rf "$out"
  # the nodes push each platform; buildx then writes the index from this machine, which trusts
  # the local CA through SSL_CERT_FILE (Go's system roots)
  local t0 t1 bundle
  bundle=$(bash local/registry.sh bundle)
  t0=$(date +%s.%N)
  SSL_CERT_FILE=$bundle docker-buildx build --builder "$BUILDX_BUILDER" \
    --platform linux/amd64,linux/arm64 --output "type=local,dest=$out" \
    --output "type=image,name=$SAMPLE_IMAGE,push=true" "$ctx"
  t1=$(date +%s.%N)
  local f
  for f in "$out"/*/built-on; do echo "$f: $(cat "$f")"; done
  log "pushed $SAMPLE_IMAGE in $(python -c "print(f'{$t1 - $t0:.1f}')") s (build + push):"
  SSL_CERT_FILE=$bundle docker-buildx imagetools inspect "$SAMPLE_IMAGE"
}

case "${1:-up}" in
  up)
    prepare
    log "pulumi up (stack $STACK)"
    pulumi up --yes --stack "$STACK" --config-file "$CONFIG" --skip-preview
    sample_build
    log "done: run 'eval \"\$(local/farm.sh env)\"' to use this farm from your shell"
    ;;
  build) sample_build ;;
  down)
    if [ -d "$STATE/backend" ] && pulumi stack select "$STACK" --non-interactive 2>/dev/null; then
      log "pulumi destroy (stack $STACK)"
      stack_config
      pulumi destroy --yes --stack "$STACK" --config-file "$CONFIG" --skip-preview
    fi
    log "registry down"
    bash local/registry.sh down
    log "test hosts down"
    bash local/testhosts.sh down
    ;;
  preview)
    stack_config
    pulumi preview --stack "$STACK" --config-file "$CONFIG" --diff "${@:2}"
    ;;
  env)
    echo "# pulumi up/preview/destroy of this stack also need: --stack $STACK --config-file $CONFIG"
    echo "export PULUMI_BACKEND_URL='$PULUMI_BACKEND_URL' PULUMI_CONFIG_PASSPHRASE_FILE='$PULUMI_CONFIG_PASSPHRASE_FILE'"
    echo "export BUILDX_CONFIG='$BUILDX_CONFIG' BUILDX_BUILDER='$BUILDX_BUILDER'"
    ;;
  *) echo "usage: $0 up|build|down|preview|env" >&2; exit 2 ;;
esac
