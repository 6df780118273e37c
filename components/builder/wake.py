"""Waking stopped nodes from the create script (idleStop on AWS or Kubernetes; pure rendering).

Before its preflight the script asks EC2 for the state of the instances of the nodes this run
needs (every node without a key; each platform's first node in the key's order with one),
starts the stopped ones (`aws ec2 start-instances`: exactly those ids, which is all the stack's
ciWakePolicy allows), waits for `instance-running`, then for each woken node's mTLS endpoint
(the instance boots and re-runs its install; $BKF_WAKE_TIMEOUT seconds, default 600). A node
that does not come up is then reported, or skipped for the next in the key's order, by the
preflight as usual. The AWS CLI is `aws` on PATH with its usual credentials and settings
(AWS_ENDPOINT_URL too).

On Kubernetes (``KubernetesWake``) a stopped node is a StatefulSet at 0 replicas: the script reads the
`scale` of the needed nodes' StatefulSets, PATCHes those at 0 to 1 (which is all the stack's CI
ServiceAccount may do), then waits for their mTLS endpoints the same way. The API server, the token and
the cluster CA come from the environment ($BKF_K8S_API, $BKF_K8S_TOKEN: the stack output ciWakeToken,
$BKF_K8S_CA: ciWakeCaCert), never from argv: curl reads the token header from stdin.

Tools outside the script (`bkf status`, `bkf wake`) read the wake data back out of the exported script
with ``parse_wake``, so the node -> instance / StatefulSet map lives in one stack output, written here.
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


@dataclass(frozen=True)
class KubernetesWake:
    namespace: str
    #: node name -> its StatefulSet
    statefulsets: dict[str, str] = field(default_factory=dict)


AnyWake = Wake | KubernetesWake


def scale_path(namespace: str, statefulset: str) -> str:
    """The API path of a StatefulSet's `scale` subresource (the script's `scale` and bkf/k8s.py)."""
    return f"/apis/apps/v1/namespaces/{namespace}/statefulsets/{statefulset}/scale"


def render_wake(wake: AnyWake) -> list[str]:
    """bash: `wake NODE...` (needs check_node, plat, ep, sn), for either backend."""
    return render_kubernetes_wake(wake) if isinstance(wake, KubernetesWake) else render_aws_wake(wake)


def render_kubernetes_wake(wake: KubernetesWake) -> list[str]:
    """bash: `sts` (node -> StatefulSet), `scale NAME [REPLICAS]` and `wake NODE...`."""
    lines = ["declare -A sts"]
    lines += [f"sts[{n}]={shlex.quote(s)}" for n, s in wake.statefulsets.items()]
    lines += [
        "# the scale of a StatefulSet (its replicas), or with REPLICAS set it; the token goes to curl on stdin",
        "scale() {",
        f'  local url="${{BKF_K8S_API%/}}{scale_path(wake.namespace, "$1")}" body r',
        '  local args=(-sS --fail -K - --connect-timeout 10 --max-time 30)',
        '  local ca=""',
        '  if [ -n "${BKF_K8S_CA:-}" ]; then',
        "    # a file curl can read twice (a /dev/fd pipe it cannot); the create script's temp dir when there",
        '    ca=$(mktemp "${probe:-${TMPDIR:-/tmp}}/bkf-k8s-ca.XXXXXX") || return 1',
        '    printf "%s\\n" "$BKF_K8S_CA" >"$ca"',
        '    args+=(--cacert "$ca")',
        '  fi',
        '  if [ $# -ge 2 ]; then',
        '    args+=(-X PATCH -H "Content-Type: application/merge-patch+json"'
        ' --data "{\\"spec\\":{\\"replicas\\":$2}}")',
        '  fi',
        "  body=$(printf 'header = \"Authorization: Bearer %s\"\\n' \"$BKF_K8S_TOKEN\" |",
        '    curl "${args[@]}" "$url") || {',
        '    [ -z "$ca" ] || rm -f "$ca"',
        '    return 1',
        '  }',
        '  [ -z "$ca" ] || rm -f "$ca"',
        "  # the API omits replicas when it is 0",
        "  local re='\"spec\":\\{[^}]*\"replicas\":([0-9]+)'",
        '  if [[ $body =~ $re ]]; then r=${BASH_REMATCH[1]}; else r=0; fi',
        '  echo "$r"',
        "}",
        "# scale those of these nodes that are at 0 to 1, then wait for their mTLS endpoints",
        "wake() {",
        '  local n r down=() woken=()',
        '  for n in "$@"; do [ -z "${sts[$n]:-}" ] || down+=("$n"); done',
        '  [ ${#down[@]} -gt 0 ] || return 0',
        '  if [ -z "${BKF_K8S_API:-}" ] || [ -z "${BKF_K8S_TOKEN:-}" ]; then',
        '    echo "wake: no BKF_K8S_API/BKF_K8S_TOKEN: nodes scaled to 0 stay down" >&2; return 0',
        '  fi',
        '  command -v curl >/dev/null || { echo "wake: no curl on PATH: nodes scaled to 0 stay down" >&2; return 0; }',
        '  local t0=$SECONDS',
        '  for n in "${down[@]}"; do',
        '    r=$(scale "${sts[$n]}") ||',
        '      fail "wake: cannot read the scale of statefulset ${sts[$n]} (CI needs the stack outputs '
        'ciWakeToken, ciWakeCaCert)"',
        '    [ "$r" -eq 0 ] || continue',
        '    echo "wake: scaling node $n (statefulset ${sts[$n]}) to 1"',
        '    scale "${sts[$n]}" 1 >/dev/null || fail "wake: could not scale statefulset ${sts[$n]} to 1"',
        '    woken+=("$n")',
        '  done',
        '  for n in "${woken[@]}"; do',
        '    local deadline=$((SECONDS + ${BKF_WAKE_TIMEOUT:-600}))',
        '    until ( check_node "$n" "${plat[$n]}" "${ep[$n]}" "${sn[$n]}" ) >/dev/null 2>&1; do',
        '      if [ $SECONDS -ge "$deadline" ]; then echo "wake: node $n does not answer yet" >&2; break; fi',
        '      sleep 2',
        '    done',
        '    echo "wake: node $n answers mTLS $((SECONDS - t0))s after its scale to 1"',
        '  done',
        "}",
    ]
    return lines


def render_aws_wake(wake: Wake) -> list[str]:
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
_STS = re.compile(r"^sts\[(?P<node>[^\]]+)\]=(?P<name>\S+)$", re.M)
# the namespace in the `scale` function's URL (render_kubernetes_wake renders scale_path(namespace, "$1"))
_NAMESPACE = re.compile(re.escape(scale_path("\0", "$1")).replace("\0", '(?P<ns>[^/"]+)') + '"')


def parse_wake(script: str) -> AnyWake | None:
    """The wake data of an exported create script (what render_wake put in it), or None when the
    script does not wake (no idle stop on AWS or Kubernetes)."""
    return parse_aws_wake(script) or parse_kubernetes_wake(script)


def parse_aws_wake(script: str) -> Wake | None:
    ids = {m["node"]: shlex.split(m["id"])[0] for m in _IID.finditer(script)}
    region = _REGION.search(script)
    if not ids or region is None:
        return None
    return Wake(shlex.split(region["region"])[0], ids)


def parse_kubernetes_wake(script: str) -> KubernetesWake | None:
    statefulsets = {m["node"]: shlex.split(m["name"])[0] for m in _STS.finditer(script)}
    namespace = _NAMESPACE.search(script)
    if not statefulsets or namespace is None:
        return None
    return KubernetesWake(namespace["ns"], statefulsets)
