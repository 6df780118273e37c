#!/usr/bin/env bash
# Every test tier, with the toolchain toolchain/bootstrap.sh built:
#   lint (ruff, shellcheck, actionlint, the docs site) -> types (mypy) -> unit (mocks)
#   -> daemons (real buildkitd/buildx)
#   -> e2e (real pulumi up/preview/destroy against test hosts on this machine) -> ec2 (the AWS node
#   path in a container) -> k8s (the Kubernetes objects on a single-node cluster, local/k8s.sh).
#   scripts/test.sh [unit]    "unit" stops after the unit tier
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=/dev/null
. .toolchain/env.sh

echo "== lint"
ruff check .
shellcheck -x components/node/bkf-node.sh local/*.sh scripts/*.sh toolchain/bootstrap.sh toolchain/lock.sh toolchain/lib/*.sh \
  toolchain/steps/*.sh review/policy/run .ci/run
actionlint examples/ci/github/*.yml
# the docs site: a broken link, a missing anchor or a page left out of the nav fails (mkdocs.yml; output in .state/site)
NO_MKDOCS_2_WARNING=1 mkdocs build --strict  # not --quiet: it hides the warnings strict mode counts
echo "== types"
mypy
if [ "${1:-}" = unit ]; then
  exec python -m pytest tests/unit tests/toolchain -q
fi
echo "== tests (unit, daemons, e2e)"
exec python -m pytest tests -q -p no:cacheprovider --durations=15
