#!/usr/bin/env bash
# The reliability suite (tests/reliability, issue 13) with its FULL counts: 20 kill -9 rounds, 20
# pulumi up/destroy cycles, 16 concurrent builds, every bad TLS client against both nodes. It ends
# with the table of figures (also written to .state/reliability-table.md). `make test` runs the same
# tests with reduced counts.
#   scripts/reliability.sh [pytest args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=/dev/null
. .toolchain/env.sh
mkdir -p .state
export BKF_RELIABILITY=full BKF_RELIABILITY_TABLE=.state/reliability-table.md
exec python -m pytest tests/reliability -q -p no:cacheprovider -rxXf --durations=10 "$@"
