#!/usr/bin/env bash
# Regenerates the `bkf insights` example of docs/insights.md from a run of the local farm.
#
#   make farm                        # the local farm (h1, h2, h16) and its sample build
#   bash scripts/insights_demo.sh    # this: the builds below, then the table, --json and the chart
#   make farm-down
#
# Builds through the farm's builder (bkf-local): two git checkouts with different origins (buildx
# sends vcs:source, the repository insights groups by); app-a for linux/amd64 built cold, again with
# a one-line change, and again unchanged (fully cached); app-b for linux/arm64 built cold and once
# failing. (One platform each: on this machine the emulated arm64 node also reports linux/amd64,
# and buildx gives a two-platform build to one node that builds both.) What it writes (docs/insights/): table-repo.txt, table-node.txt, table-day.txt,
# insights.json, chart.png, and run.txt (date and the commands).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=/dev/null
. .toolchain/env.sh
eval "$(bash local/farm.sh env | grep '^export')"
OUT=${BKF_INSIGHTS_OUT:-$ROOT/docs/insights}
STACK=${BKF_STACK:-local}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

log() { printf '\n== %s\n' "$*"; }

# A checkout of a small service: a busybox base (local/rootfs.sh: no registry reachable here), a
# step that takes a few seconds (what the cache saves), the code copied in.
checkout() {
  local name=$1 origin=$2 repo=$WORK/$1
  mkdir -p "$repo"
  bash local/rootfs.sh "$repo" >/dev/null
  # (the repository's name first: its builds share no cache with the other's, so its first is cold)
  echo "$name" >"$repo/NAME"
  cat >"$repo/Dockerfile" <<'EOF'
FROM scratch AS base
COPY NAME /etc/repository
ARG TARGETARCH
ADD rootfs-${TARGETARCH}.tar /
# the slow dependency step of a real service, a few seconds here
RUN sleep 3 && echo deps > /deps
COPY main.txt /app/
RUN wc -c /app/main.txt > /app/size
EOF
  printf 'FROM scratch\nCOPY missing.txt /\n' >"$repo/Dockerfile.fail"
  echo "$name v1" >"$repo/main.txt"
  git -C "$repo" -c init.defaultBranch=main init -q
  git -C "$repo" remote add origin "$origin"
  commit "$repo" initial
}

commit() {
  git -C "$1" add -A
  git -C "$1" -c user.name=demo -c user.email=demo@bkf commit -qm "$2"
}

build() {
  local repo=$1 platform=$2; shift 2
  docker-buildx build --builder "$BUILDX_BUILDER" --progress quiet --platform "$platform" \
    --output type=cacheonly "$@" "$repo"
}

log "builds through $BUILDX_BUILDER"
checkout app-a https://git.example.com/acme/app-a.git
checkout app-b https://git.example.com/acme/app-b.git
build "$WORK/app-a" linux/amd64                      # cold
echo "app-a v2" >"$WORK/app-a/main.txt"; commit "$WORK/app-a" "one-line change"
build "$WORK/app-a" linux/amd64                      # the dependency step cached, the code rebuilt
build "$WORK/app-a" linux/amd64                      # unchanged: fully cached
build "$WORK/app-b" linux/arm64                      # cold (RUN steps under emulation here)
if build "$WORK/app-b" linux/arm64 -f "$WORK/app-b/Dockerfile.fail" 2>"$WORK/fail.log"; then
  echo "the failing build succeeded" >&2; exit 1
fi
echo "app-b's failing build failed as meant: $(grep -m1 -o 'missing.txt[^\"]*' "$WORK/fail.log" || true)"

log "bkf insights (stack $STACK)"
outputs=$WORK/outputs.json
(umask 077; pulumi stack output --stack "$STACK" --json --show-secrets >"$outputs")
insights() { python -m bkf insights --outputs "$outputs" "$@"; }
started=$(date +%s.%N)
# a wide terminal for the tables, as a reader's would be
COLUMNS=140 insights --chart "$OUT/chart.png" | tee "$OUT/table-repo.txt"
ended=$(date +%s.%N)
COLUMNS=140 insights --by node | tee "$OUT/table-node.txt"
COLUMNS=140 insights --by day | tee "$OUT/table-day.txt"
insights --json | tee "$OUT/insights.json"
{
  echo "run: $(date -u '+%Y-%m-%d %H:%M UTC') on the local farm (make farm: h1 amd64-1, h2 arm64-1, h16 amd64-2)"
  echo "commit: $(git rev-parse --short HEAD)"
  echo "command: bash scripts/insights_demo.sh"
  echo "bkf insights (table and chart, 3 nodes): $(python -c "print(f'{$ended - $started:.2f}')") s"
} | tee "$OUT/run.txt"
