#!/usr/bin/env bash
# Every test tier, with the toolchain toolchain/bootstrap.sh built:
#   lint (ruff, shellcheck, actionlint, the docs site) -> types (mypy), side by side with the unit
#   and toolchain tiers (mocks)
#   -> the heavy tiers in four lanes side by side: e2e (real pulumi up/preview/destroy against test
#   hosts on this machine); k8s (the Kubernetes backend on a single-node cluster, local/k8s.sh); and
#   daemons (real buildkitd/buildx), ec2 (the AWS node path in a container), reliability.
#   Ends with the time of every stage and tier (tests/support/tier_times.py).
#   scripts/test.sh [unit]    "unit" stops after the unit tier
#
# Why lint+types run beside the unit tier: each is one single-threaded process (mypy, mkdocs,
# pytest), so on 2 cores the pair takes about the longer of the two instead of the sum; they share
# nothing (lint only reads the tree and writes .state/site and the tools' caches; the unit and
# toolchain tiers write under pytest's temp dirs and pip's build/ and *.egg-info, which ruff, mypy
# and mkdocs do not read, and touch no test host, port or registry).
# A lint or type error still stops the run before the heavy tiers; its output is printed whole,
# after the unit tier's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=/dev/null
. .toolchain/env.sh

run_start=$EPOCHREALTIME
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export BKF_TIER_TIMES="$work/times.json"

since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

lint_and_types() {
  local t
  t=$EPOCHREALTIME
  echo "== lint"
  ruff check .
  shellcheck -x components/node/bkf-node.sh local/*.sh scripts/*.sh toolchain/bootstrap.sh toolchain/lock.sh \
    toolchain/lib/*.sh toolchain/steps/*.sh review/policy/run .ci/run
  actionlint examples/ci/github/*.yml
  # the docs site: a broken link, a missing anchor or a page left out of the nav fails (mkdocs.yml; output in .state/site)
  NO_MKDOCS_2_WARNING=1 mkdocs build --strict  # not --quiet: it hides the warnings strict mode counts
  echo "lint $(since "$t")" >>"$work/stages"
  t=$EPOCHREALTIME
  echo "== types"
  mypy
  echo "types $(since "$t")" >>"$work/stages"
}

print_times() {
  echo "== time per stage and tier"
  python -m tests.support.tier_times print "$BKF_TIER_TIMES" "$(since "$run_start")"
}

(lint_and_types) >"$work/lint.log" 2>&1 &
lint_pid=$!
echo "== unit, toolchain (lint and types beside them: their output follows)"
unit_rc=0
python -m pytest tests/unit tests/toolchain -q -p no:cacheprovider || unit_rc=$?
lint_rc=0
wait "$lint_pid" || lint_rc=$?
cat "$work/lint.log"
while read -r name seconds; do
  python -m tests.support.tier_times add "$BKF_TIER_TIMES" "$name" "$seconds"
done < <(cat "$work/stages" 2>/dev/null || true)
if [ "$lint_rc" != 0 ]; then
  echo "lint or types failed (exit $lint_rc): the heavy tiers are not run" >&2
  print_times
  exit "$lint_rc"
fi
if [ "${1:-}" = unit ]; then
  print_times
  exit "$unit_rc"
fi
# The heavy tiers in four lanes side by side, each one pytest: they wait far more than they
# compute (pods rolling, awaits, idle clocks, builds under QEMU), and share nothing a test holds:
# each module has its own test hosts (hN), registry ports and network namespaces, host sets share
# the bridge under local/testhosts.sh's lock, and the k8s tier has its own bridge. The lanes are
# balanced by their tiers' times (e2e; k8s; daemons, ec2 and reliability; the bench's smoke run,
# the e2e tier's longest test and self-contained: its own hosts h41/h42, registry port and
# dockerd); the first lane's output streams, the others' is printed whole after it, in order.
LANES=("tests/e2e --ignore=tests/e2e/test_bench_smoke.py" "tests/k8s" "tests/daemons tests/ec2 tests/reliability"
  "tests/e2e/test_bench_smoke.py")
echo "== tests, ${#LANES[@]} lanes side by side: $(printf '(%s) ' "${LANES[@]}")(the first streams, the others follow)"
heavy=(-q -p no:cacheprovider --durations=15)
# Every lane in a process group of its own (set -m: a background job of a script otherwise starts
# with SIGINT ignored, and its tests would run on after a Ctrl-C, holding their hosts), this script
# waiting on them all: a Ctrl-C reaches the script, in `wait`, and its trap hands SIGINT to every
# lane and waits while their fixtures tear down; every lane's output is then printed as usual.
# Stdin is /dev/null: a process group other than the terminal's would be stopped if it read it.
pids=()
set -m
for i in "${!LANES[@]}"; do
  read -r -a tiers <<<"${LANES[$i]}"
  if [ "$i" = 0 ]; then
    python -m pytest "${tiers[@]}" "${heavy[@]}" </dev/null &
  else
    python -m pytest "${tiers[@]}" "${heavy[@]}" </dev/null >"$work/lane-$i.log" 2>&1 &
  fi
  pids+=("$!")
done
set +m
interrupted=0
trap 'interrupted=1; kill -INT "${pids[@]}" 2>/dev/null || true; wait "${pids[@]}" || true' INT TERM
heavy_rc=0
for i in "${!pids[@]}"; do
  rc=0
  wait "${pids[$i]}" || rc=$?
  [ "$heavy_rc" != 0 ] || heavy_rc=$rc
  [ "$i" = 0 ] && continue
  echo "== lane $((i + 1)) (${LANES[$i]})"
  cat "$work/lane-$i.log"
done
print_times
if [ "$interrupted" = 1 ]; then
  echo "interrupted: every lane has torn down" >&2
  exit 130
fi
[ "$unit_rc" = 0 ] || exit "$unit_rc"
exit "$heavy_rc"
