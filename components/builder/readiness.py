"""Waiting for booting nodes in the create script (pure rendering).

A fresh EC2 node answers mTLS only once cloud-init has downloaded, unpacked and started
BuildKit, minutes after the instance exists. With a bound, the preflight probes each node
until the bound (one deadline for the whole preflight, from its first probe), printing a
line per node and round, then fails with each node's last real error (buildctl's, not buildx's
"context deadline exceeded") and the command that shows its boot log. Without a bound (SSH
and Kubernetes: their nodes are up when `up` reaches the builder) nothing here is rendered
and the script probes once, as it always did. $BKF_READY_TIMEOUT and $BKF_READY_INTERVAL
override the rendered bound and the seconds between rounds (CI, tests).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

#: what check_node says of a daemon that answers with the wrong platform: no wait fixes that
WRONG_PLATFORM = "natively, but its daemon reports"
#: the failover script's steps with a bound: without a key every node is awaited; with one, each
#: round probes a platform's nodes in the key's order and the first that answers joins
AWAIT_ALL = '  for n in "${all[@]}"; do if await_any "$n"; then joined+=("$n"); else failed+=("$n"); fi; done'
AWAIT_PICK = [
    '    if await_any "${order[@]}"; then joined+=("$picked")',
    '    else no_native "$p" " within ${ready_timeout}s" "${order[@]}" || exit 1; fi',
]


@dataclass(frozen=True)
class Readiness:
    #: how long the preflight waits for its nodes, in seconds (0: probe once)
    timeout_seconds: int
    #: node name -> how to read its boot log, where the backend knows it
    boot_logs: dict[str, str] = field(default_factory=dict)
    interval_seconds: int = 10


def aws_boot_log(region: str, instance_id: str) -> str:
    """How to read an EC2 node's boot (cloud-init runs the install; its output is also on the console)."""
    r, i = shlex.quote(region), shlex.quote(instance_id)
    return (f"aws ec2 get-console-output --region {r} --instance-id {i} --latest --query Output --output text"
            f" (or on the node: aws ssm start-session --region {r} --target {i}, then"
            " sudo tail -n 100 /var/log/cloud-init-output.log)")


def render_await(ready: Readiness) -> list[str]:
    """bash: `await_any NODE...` sets $picked to the first of the nodes, in order, that passes the
    preflight within the bound (needs check_node, fail, plat, ep, sn, probe); returns 1 after
    reporting every node's last error when none does."""
    lines = [
        f"ready_timeout=${{BKF_READY_TIMEOUT:-{ready.timeout_seconds}}}",
        f"ready_every=${{BKF_READY_INTERVAL:-{ready.interval_seconds}}}",
        "declare -A bootlog=()",
        *(f"bootlog[{n}]={shlex.quote(cmd)}" for n, cmd in ready.boot_logs.items()),
        "picked=\"\"",
        "# shellcheck disable=SC2034 # $picked is read by the key's failover only",
        "await_any() {",
        "  local n out s",
        "  # one deadline for the whole preflight, from its first probe (after any wake)",
        '  [ -n "${ready_t0:-}" ] || ready_t0=$SECONDS',
        "  local -A last=() full=()",
        "  while :; do",
        '    for n in "$@"; do',
        "      # a probe builder left by the last round would make `create` refuse the name",
        '      BUILDX_CONFIG="$probe" bx rm "probe-$n" >/dev/null 2>&1 || true',
        '      if out=$(check_node "$n" "${plat[$n]}" "${ep[$n]}" "${sn[$n]}" 2>&1); then',
        '        echo "$out"; picked=$n; return 0',
        "      fi",
        f'      case $out in *"{WRONG_PLATFORM}"*) echo "$out" >&2; exit 1;; esac',
        "      full[$n]=$out",
        "      # the last line before check_node's own verdict: buildctl's (or openssl's) error",
        "      last[$n]=$(grep -v -e '^preflight: ' -e '^[[:space:]]*$' <<<\"$out\" | tail -n 1 || true)",
        "    done",
        "    # a silent load read spares a node's probe in the first round only: a booting node answers later",
        "    silent=()",
        "    s=$((SECONDS - ready_t0))",
        '    if [ "$s" -ge "$ready_timeout" ]; then',
        '      for n in "$@"; do',
        '        echo "${full[$n]}" >&2',
        '        echo "preflight: node $n (${ep[$n]}) is not ready after ${s}s (bound ${ready_timeout}s);' +
        ' last error: ${last[$n]:-none}" >&2',
        '        [ -z "${bootlog[$n]:-}" ] || echo "preflight: boot log of $n: ${bootlog[$n]}" >&2',
        "      done",
        "      return 1",
        "    fi",
        '    for n in "$@"; do',
        '      echo "preflight: waiting for node $n (${ep[$n]}) ${s}s/${ready_timeout}s: ${last[$n]:-}"',
        "    done",
        '    sleep $((ready_timeout - s < ready_every ? ready_timeout - s : ready_every))',
        "  done",
        "}",
    ]
    return lines
