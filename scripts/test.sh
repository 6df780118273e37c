#!/usr/bin/env bash
# Every test tier, with the toolchain toolchain/bootstrap.sh built:
#   lint (ruff, shellcheck, actionlint, the docs site) -> types (mypy), side by side with the unit
#   and toolchain tiers (mocks)
#   -> the heavy tiers in two lanes side by side: daemons (real buildkitd/buildx) then e2e (real
#   pulumi up/preview/destroy against test hosts on this machine); and k8s (the Kubernetes backend
#   on a single-node cluster, local/k8s.sh), ec2 (the AWS node path in a container), reliability.
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
# The heavy tiers in two lanes side by side, each one pytest: they wait far more than they compute
# (pods rolling, awaits, idle clocks, builds under QEMU), and share nothing a test holds: each
# module has its own test hosts (hN), registry ports and network namespaces, host sets share the
# bridge under local/testhosts.sh's lock, and the k8s tier has its own bridge. Lane B's output is
# printed whole after lane A's.
LANE_A=(tests/daemons tests/e2e)
LANE_B=(tests/k8s tests/ec2 tests/reliability)
echo "== tests, two lanes side by side: (${LANE_A[*]}) and (${LANE_B[*]}, its output follows)"
heavy=(-q -p no:cacheprovider --durations=15)
lane_b_rc=0
# Lane B in a process group of its own (set -m): a background job of a script otherwise starts with
# SIGINT ignored, so a Ctrl-C stopped lane A but lane B's tests ran on, holding their hosts. The
# terminal's SIGINT reaches this script and lane A; once lane A has torn down, the trap hands it to
# lane B, whose fixtures tear down too.
set -m
python -m pytest "${LANE_B[@]}" "${heavy[@]}" >"$work/lane-b.log" 2>&1 &
lane_b=$!
set +m
trap 'kill -INT "$lane_b" 2>/dev/null || true; wait "$lane_b" || true' INT TERM
lane_a_rc=0
python -m pytest "${LANE_A[@]}" "${heavy[@]}" || lane_a_rc=$?
wait "$lane_b" || lane_b_rc=$?
echo "== lane B (${LANE_B[*]})"
cat "$work/lane-b.log"
print_times
[ "$unit_rc" = 0 ] || exit "$unit_rc"
[ "$lane_a_rc" = 0 ] || exit "$lane_a_rc"
exit "$lane_b_rc"
