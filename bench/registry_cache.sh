#!/usr/bin/env bash
# Registry cache round trip through the local farm (make farm): a build with three expensive RUN
# steps, each leaving a 30 MB incompressible layer, on one node:
#   cold      node cache emptied (buildctl prune --all), build with --cache-to the local registry
#   registry  node cache emptied again, build with --cache-from: every step from the registry
#   local     the same build again: every step from the node's own cache
# Outputs go to a local directory, so cached layers must really be fetched. Prints each figure
# and the median per kind.
#   bench/registry_cache.sh [NODE_HOST=h1] [RUNS=3]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
host=${1:-h1}
runs=${2:-3}
# shellcheck source=/dev/null
. .toolchain/env.sh
eval "$(bash local/farm.sh env)"
export BKF_REGISTRY_DIR=$ROOT/.state/local/registry
SSL_CERT_FILE=$(bash local/registry.sh bundle)
export SSL_CERT_FILE
registry=${BKF_REGISTRY:-10.77.0.1:5443}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pulumi stack output caCert --stack local >"$tmp/ca.pem"
pulumi stack output clientCert --stack local >"$tmp/cert.pem"
(umask 077; pulumi stack output clientKey --show-secrets --stack local >"$tmp/key.pem")
addr=10.77.0.$((10 + ${host#h}))
platform=$(pulumi stack output nodes --json --stack local |
  jq -r --arg e "tcp://$addr:1234" '.[] | select(.endpoint == $e) | .platform')
[ -n "$platform" ] || { echo "no node of the local farm at $addr" >&2; exit 1; }
node() {
  buildctl --addr "tcp://$addr:1234" --tlsservername "$addr" --tlscacert "$tmp/ca.pem" \
    --tlscert "$tmp/cert.pem" --tlskey "$tmp/key.pem" "$@"
}
mkdir -p "$tmp/ctx"
bash local/rootfs.sh "$tmp/ctx" >/dev/null
cat >"$tmp/ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch AS base
ARG TARGETARCH
ADD rootfs-${TARGETARCH}.tar /
FROM base
ARG SEED
RUN head -c 30000000 /dev/urandom > /one && sleep 2 && echo "$SEED" > /seed
RUN head -c 30000000 /dev/urandom > /two && sleep 2
RUN head -c 30000000 /dev/urandom > /three && sleep 2
DOCKERFILE
build() {
  local start end
  start=$(date +%s.%N)
  docker-buildx build --builder "$BUILDX_BUILDER" --progress plain --platform "$platform" \
    --build-arg "SEED=$seed" --output "type=local,dest=$tmp/out" "$@" "$tmp/ctx" >"$tmp/log" 2>&1 ||
    { cat "$tmp/log" >&2; exit 1; }
  end=$(date +%s.%N)
  awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }'
}
declare -A all=([cold]="" [registry]="" [local]="")
for i in $(seq "$runs"); do
  seed=$RANDOM$RANDOM
  ref="$registry/bkf/bench-cache:$seed"
  node prune --all >/dev/null
  c=$(build --cache-to "type=registry,ref=$ref,mode=max")
  node prune --all >/dev/null
  r=$(build --cache-from "type=registry,ref=$ref")
  cached=$(grep -cE '^#[0-9]+ CACHED$' "$tmp/log" || true)
  l=$(build)
  echo "run $i ($platform on $host): cold ${c}s, from the registry cache ${r}s ($cached CACHED lines), local ${l}s"
  all[cold]+="$c "; all[registry]+="$r "; all[local]+="$l "
done
for k in cold registry local; do
  # shellcheck disable=SC2086 # word splitting of the figures is intended
  printf '%s\n' ${all[$k]} | sort -n | awk -v k="$k" '{a[NR]=$1} END { printf "%-8s median %.2fs (min %.2fs, max %.2fs, %d runs)\n", k, a[int((NR+1)/2)], a[1], a[NR], NR }'
done
