#!/usr/bin/env bash
# How long a node is unavailable while bkf-node.sh restarts buildkitd (what a cert
# rotation costs). Needs the local farm (make farm). Prints one figure per run and
# the min/median/max, measured from the client side over mTLS.
#   bench/restart_downtime.sh [NODE_HOST=h1] [RUNS=5]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
host=${1:-h1}
runs=${2:-5}
# shellcheck source=/dev/null
. .toolchain/env.sh
eval "$(bash local/farm.sh env)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pulumi stack output caCert --stack local >"$tmp/ca.pem"
pulumi stack output clientCert --stack local >"$tmp/cert.pem"
(umask 077; pulumi stack output clientKey --show-secrets --stack local >"$tmp/key.pem")
addr=10.77.0.$((10 + ${host#h}))
probe() {
  buildctl --addr "tcp://$addr:1234" --tlsservername "$addr" --tlscacert "$tmp/ca.pem" \
    --tlscert "$tmp/cert.pem" --tlskey "$tmp/key.pem" --timeout 1 debug workers >/dev/null 2>&1
}
probe || { echo "node $host ($addr) is not answering before the benchmark" >&2; exit 1; }
figures=()
for i in $(seq "$runs"); do
  start=$(date +%s.%N)
  bash local/testhosts.sh ssh "$host" "/opt/buildkit-farm/bkf-node.sh restart" >/dev/null 2>&1 &
  # wait until the daemon went away, then until it answers again
  for _ in $(seq 200); do probe || break; sleep 0.02; done
  until probe; do sleep 0.05; done
  end=$(date +%s.%N)
  wait
  f=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
  figures+=("$f")
  echo "run $i: unavailable for at most ${f}s (restart issued -> mTLS answer)"
done
printf '%s\n' "${figures[@]}" | sort -n | awk '{a[NR]=$1} END { printf "min %.2fs  median %.2fs  max %.2fs over %d runs\n", a[1], a[int((NR+1)/2)], a[NR], NR }'
