"""Waking stopped nodes from the create script (AWS with idleStop on; pure rendering).

Before its preflight the script asks EC2 for the state of the instances of the nodes this run
needs (every node without a key; each platform's first node in the key's order with one),
starts the stopped ones (`aws ec2 start-instances`: exactly those ids, which is all the stack's
ciWakePolicy allows), waits for `instance-running`, then for each woken node's mTLS endpoint
(the instance boots and re-runs its install; $BKF_WAKE_TIMEOUT seconds, default 600). A node
that does not come up is then reported, or skipped for the next in the key's order, by the
preflight as usual. The AWS CLI is `aws` on PATH with its usual credentials and settings
(AWS_ENDPOINT_URL too).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Wake:
    region: str
    #: node name -> EC2 instance id
    instance_ids: dict[str, str] = field(default_factory=dict)


def render_wake(wake: Wake) -> list[str]:
    """bash: `iid` (node -> instance id) and `wake NODE...` (needs check_node, plat, ep, sn)."""
    r = shlex.quote(wake.region)
    lines = ["declare -A iid"]
    lines += [f"iid[{n}]={shlex.quote(i)}" for n, i in wake.instance_ids.items()]
    lines += [
        "# start the stopped instances among these nodes, then wait for their mTLS endpoints",
        "wake() {",
        '  local n id st ids=() stopped=() stopping=() woken=()',
        '  for n in "$@"; do [ -z "${iid[$n]:-}" ] || ids+=("${iid[$n]}"); done',
        '  [ ${#ids[@]} -gt 0 ] || return 0',
        '  command -v aws >/dev/null || { echo "wake: no aws CLI on PATH: stopped nodes stay stopped" >&2; return 0; }',
        f'  st=$(aws ec2 describe-instances --region {r} --instance-ids "${{ids[@]}}" \\',
        "    --query 'Reservations[].Instances[].[InstanceId,State.Name]' --output text) ||",
        '    fail "wake: cannot read the state of ${ids[*]} (CI needs the stack output ciWakePolicy)"',
        '  while read -r id s; do',
        '    case $s in stopped) stopped+=("$id");; stopping) stopping+=("$id");; esac',
        '  done <<<"$st"',
        '  if [ ${#stopping[@]} -gt 0 ]; then',
        '    echo "wake: waiting for ${stopping[*]} to finish stopping"',
        f'    aws ec2 wait instance-stopped --region {r} --instance-ids "${{stopping[@]}}" ||',
        '      fail "wake: ${stopping[*]} did not stop"',
        '    stopped+=("${stopping[@]}")',
        '  fi',
        '  [ ${#stopped[@]} -gt 0 ] || return 0',
        '  local t0=$SECONDS',
        '  echo "wake: starting ${stopped[*]}"',
        f'  aws ec2 start-instances --region {r} --instance-ids "${{stopped[@]}}" >/dev/null ||',
        '    fail "wake: could not start ${stopped[*]}"',
        f'  aws ec2 wait instance-running --region {r} --instance-ids "${{stopped[@]}}" ||',
        '    fail "wake: ${stopped[*]} did not reach running"',
        '  echo "wake: ${stopped[*]} running after $((SECONDS - t0))s"',
        '  for n in "$@"; do',
        '    case " ${stopped[*]} " in *" ${iid[$n]:-none} "*) woken+=("$n");; esac',
        '  done',
        '  for n in "${woken[@]}"; do',
        '    local deadline=$((SECONDS + ${BKF_WAKE_TIMEOUT:-600}))',
        '    until ( check_node "$n" "${plat[$n]}" "${ep[$n]}" "${sn[$n]}" ) >/dev/null 2>&1; do',
        '      if [ $SECONDS -ge "$deadline" ]; then echo "wake: node $n does not answer yet" >&2; break; fi',
        '      sleep 5',
        '    done',
        '    echo "wake: node $n answers mTLS $((SECONDS - t0))s after its start"',
        '  done',
        "}",
    ]
    return lines


_IID = re.compile(r"^iid\[(?P<node>[^\]]+)\]=(?P<id>\S+)$", re.M)
_REGION = re.compile(r"aws ec2 describe-instances --region (?P<region>\S+) ")


def parse_wake(script: str) -> Wake | None:
    """The wake data of an exported create script (what render_wake put in it), or None when the
    script does not wake (no idle stop on AWS). Tools outside the script (`bkf status`, `bkf wake`)
    read it here so the node -> instance map lives in one stack output, written by this module."""
    ids = {m["node"]: shlex.split(m["id"])[0] for m in _IID.finditer(script)}
    region = _REGION.search(script)
    if not ids or region is None:
        return None
    return Wake(shlex.split(region["region"])[0], ids)
