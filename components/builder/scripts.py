"""buildx commands for a multi-node remote builder (pure functions).

The create script is the ONE way the builder is made: the Builder component runs
it (secrets in its environment), and it is exported as a stack output for CI to
run itself. Its cert files are written with absolute paths (buildx's remote
driver takes paths, not PEM contents) and mode 0600.

Over 300 lines on purpose: the create script is one bash program, rendered in one place (its
parts that stand alone live beside it: readiness, wake, spread).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from components.builder.placement import DEFAULT_C
from components.builder.readiness import AWAIT_ALL, AWAIT_PICK, WRONG_PLATFORM, Readiness, render_await
from components.builder.spread import render_loads, render_place
from components.builder.strict import EMULATE_KEY, no_native_message, render_keyless_settle, render_strict
from components.builder.wake import AnyWake, render_wake

#: environment variables the create script reads PEM contents from
ENV_CA = "BKF_TLS_CA"
ENV_CERT = "BKF_TLS_CERT"
ENV_KEY = "BKF_TLS_KEY"
#: seconds one node's probe may take (builder.probeTimeoutSeconds; $BKF_PROBE_TIMEOUT at run time)
DEFAULT_PROBE_TIMEOUT = 10


@dataclass(frozen=True)
class BuilderNode:
    name: str
    platform: str
    endpoint: str
    server_name: str


def driver_opts(server_name: str, cert_dir: str) -> str:
    return (f"servername={server_name},cacert={cert_dir}/ca.pem,"
            f"cert={cert_dir}/cert.pem,key={cert_dir}/key.pem")


def create_args(builder: str, nodes: Sequence[BuilderNode], cert_dir: str) -> list[list[str]]:
    """argv (after `buildx`) of each create call: the first node, then --append for the rest."""
    if not nodes:
        raise ValueError("a builder needs at least one node")
    calls = []
    for i, n in enumerate(nodes):
        argv = ["create"]
        if i > 0:
            argv.append("--append")
        argv += ["--name", builder, "--driver", "remote", "--node", n.name,
                 "--platform", n.platform, "--driver-opt", driver_opts(n.server_name, cert_dir),
                 n.endpoint]
        calls.append(argv)
    return calls


_CERTS = "__BKF_CERT_DIR__"


def _q(argv: Sequence[str]) -> str:
    """Shell-quote argv; the cert-dir placeholder becomes a double-quoted "$certs"."""
    out = []
    for a in argv:
        if _CERTS in a:
            if any(c in a for c in '"$`\\'):
                raise ValueError(f"unsafe characters in {a!r}")
            out.append('"' + a.replace(_CERTS, "$certs") + '"')
        else:
            out.append(shlex.quote(a))
    return " ".join(out)


def render_create_script(builder: str, nodes: Sequence[BuilderNode], buildx: str = "docker buildx",
                         wake: AnyWake | None = None, ready: Readiness | None = None,
                         load_bound: float = DEFAULT_C,
                         probe_timeout: int = DEFAULT_PROBE_TIMEOUT, emulate: Sequence[str] = ()) -> str:
    """A bash script that checks every node, then (re)creates the builder.

    Reads PEMs from $BKF_TLS_CA/$BKF_TLS_CERT/$BKF_TLS_KEY; honours $BUILDX_CONFIG
    (default ~/.docker/buildx); writes certs to $BKF_CERT_DIR (default
    $BUILDX_CONFIG/certs/<builder>).

    The preflight bootstraps each node alone in a throwaway buildx config, with no
    platform pinned, so the node's own platform list (native first) is what
    buildx shows. buildx reports a refused or failed TLS dial only as "context
    deadline exceeded", so on failure the script asks buildctl (or openssl) for
    the real error. A failed preflight leaves an existing builder untouched.
    With `ready` (components.builder.readiness) it waits for booting nodes. With spare nodes a
    build goes by bounded loads (`load_bound` is c of components.builder.placement).

    Each node's probe (its `create` dials the node too, then `inspect --bootstrap`) has one bound,
    `probe_timeout` seconds ($BKF_PROBE_TIMEOUT at run time): buildx waits 20 s per dial on a node
    that drops packets (a security group change, a partition), so without the bound such a node
    would cost about a minute per probe, and the key's failover would wait that long before the
    next node. A probe the bound cuts is not diagnosed (the diagnosis would wait for the same
    silence again); the script says so in one line naming the node and the bound.

    Strict platforms (components.builder.strict): each node joins claiming its own platform only; a
    platform with no node passing the preflight stops the script naming the platform and the nodes
    tried, unless `emulate` (builder.emulate) lists it: then a node of another platform claims it too.
    """
    if not nodes:
        raise ValueError("a builder needs at least one node")
    if probe_timeout < 1:
        raise ValueError(f"probe_timeout must be 1 second or more, not {probe_timeout}")
    lines = [
        "#!/usr/bin/env bash",
        f"# Creates the multi-node buildx builder {builder!r} (remote driver) after checking every node.",
        f"# Needs PEM contents in ${ENV_CA}, ${ENV_CERT} and ${ENV_KEY}.",
        "set -euo pipefail",
        f': "${{{ENV_CA}:?set {ENV_CA} to the farm CA certificate (PEM)}}"',
        f': "${{{ENV_CERT}:?set {ENV_CERT} to the client certificate (PEM)}}"',
        f': "${{{ENV_KEY}:?set {ENV_KEY} to the client key (PEM)}}"',
        'export BUILDX_CONFIG="${BUILDX_CONFIG:-$HOME/.docker/buildx}"',
        f'certs="${{BKF_CERT_DIR:-$BUILDX_CONFIG/certs/{builder}}}"',
        'mkdir -p "$certs" && chmod 0700 "$certs"',
        "# buildx reads cert files by absolute path at every dial",
        'certs=$(cd "$certs" && pwd -P)',
        'case "$certs" in *,*) echo "cert dir $certs must not contain a comma" >&2; exit 1;; esac',
        "(",
        "  umask 077",
        f'  printf "%s\\n" "${ENV_CA}" > "$certs/ca.pem.tmp" && mv -f "$certs/ca.pem.tmp" "$certs/ca.pem"',
        f'  printf "%s\\n" "${ENV_CERT}" > "$certs/cert.pem.tmp" && mv -f "$certs/cert.pem.tmp" "$certs/cert.pem"',
        f'  printf "%s\\n" "${ENV_KEY}" > "$certs/key.pem.tmp" && mv -f "$certs/key.pem.tmp" "$certs/key.pem"',
        ")",
        f'bx() {{ {buildx} "$@"; }}',
        'fail() { echo "preflight: $*" >&2; exit 1; }',
        "# the bound of one node's probe: a node that drops packets costs this once, not buildx's 20 s per dial",
        f"probe_timeout=${{BKF_PROBE_TIMEOUT:-{probe_timeout}}}",
        'case $probe_timeout in ""|0*|*[!0-9]*)',
        "  fail \"BKF_PROBE_TIMEOUT must be whole seconds, 1 or more (like builder.probeTimeoutSeconds),\" \\",
        "    \"not '$probe_timeout'\";;",
        "esac",
        "# buildx with what is left of the probe's bound (until $probe_deadline); 124, as timeout's, when none is",
        "bx_bounded() {",
        "  local left=$((probe_deadline - SECONDS))",
        '  [ "$left" -gt 0 ] || return 124',
        "  # (no timeout(1), as on a bare macOS: unbounded, as before)",
        "  # -k 1: a client that takes TERM as a cancel and then waits on its dial is killed a second later",
        f'  if command -v timeout >/dev/null; then timeout -k 1 "$left" {buildx} "$@"; else {buildx} "$@"; fi',
        "}",
        "diagnose() {",
        '  local ep=$1 sn=$2',
        "  if command -v buildctl >/dev/null; then",
        '    timeout -k 1 "$probe_timeout" buildctl --addr "$ep" --tlsservername "$sn" --tlscacert "$certs/ca.pem" \\',
        '      --tlscert "$certs/cert.pem" --tlskey "$certs/key.pem" debug workers 2>&1 | tail -n 3 >&2 || true',
        "  elif command -v openssl >/dev/null; then",
        '    timeout -k 1 "$probe_timeout" openssl s_client -connect "${ep#tcp://}" -servername "$sn" \\',
        '      -verify_return_error -CAfile "$certs/ca.pem" -cert "$certs/cert.pem" -key "$certs/key.pem" \\',
        '      </dev/null 2>&1 | grep -iE "error|verify|alert|refused" | head -n 5 >&2 || true',
        "  fi",
        "}",
        'probe=$(mktemp -d)',
        """trap 'rm -rf "$probe"' EXIT""",
        "# nodes that already let the bound pass in silence (the load read, components/builder/spread.py):",
        "# their next probe is not made, it would wait for the same silence",
        "declare -A silent=()",
        "check_node() {",
        '  local name=$1 platform=$2 ep=$3 sn=$4 out="" native rc=0',
        "  # one deadline for the whole probe: create dials the node too (buildx loads its status)",
        "  probe_deadline=$((SECONDS + probe_timeout))",
        '  if [ -n "${silent[$name]:-}" ]; then',
        "    rc=124",
        "  else",
        '    BUILDX_CONFIG="$probe" bx_bounded create --name "probe-$name" --driver remote \\',
        '      --driver-opt "servername=$sn,cacert=$certs/ca.pem,cert=$certs/cert.pem,key=$certs/key.pem" \\',
        '      "$ep" >/dev/null || rc=$?',
        "  fi",
        "  # (create refusing otherwise, e.g. the probe builder of an earlier probe of this node, leaves the",
        "  # verdict to inspect, as it always did)",
        '  if [ "$rc" != 124 ]; then',
        '    rc=0; out=$(BUILDX_CONFIG="$probe" bx_bounded inspect --bootstrap "probe-$name" 2>&1) || rc=$?',
        "  fi",
        '  if [ "$rc" = 124 ]; then',
        "    # buildx retries a refused dial until its own timeout, so a cut probe is silence or a refusal:",
        "    # buildctl answers a refusal at once (a node already silent to the load read is not asked again)",
        '    if [ -z "${silent[$name]:-}" ] && command -v buildctl >/dev/null; then',
        '      rc=0; out=$(timeout -k 1 "$probe_timeout" buildctl --addr "$ep" --tlsservername "$sn" \\',
        '        --tlscacert "$certs/ca.pem" --tlscert "$certs/cert.pem" --tlskey "$certs/key.pem" \\',
        "        debug workers 2>&1) || rc=$?",
        '      if [ "$rc" != 124 ] && [ "$rc" != 137 ]; then',
        '        tail -n 3 <<<"$out" >&2',
        '        fail "node $name ($ep) is unreachable or refused the TLS handshake"',
        "      fi",
        "    fi",
        '    echo "probe of node $name ($ep) timed out after ${probe_timeout}s (the bound:' +
        ' builder.probeTimeoutSeconds or \\$BKF_PROBE_TIMEOUT): no answer at all (packets dropped by a firewall' +
        ' or security group, a network partition, or the host is off)" >&2',
        '    fail "node $name ($ep) is unreachable or refused the TLS handshake"',
        "  fi",
        '  if [ "$rc" != 0 ]; then',
        '    echo "$out" >&2',
        '    diagnose "$ep" "$sn"',
        '    fail "node $name ($ep) is unreachable or refused the TLS handshake"',
        "  fi",
        "  native=$(awk '$1==\"Platforms:\"{print $2; exit}' <<<\"$out\")",
        "  native=${native%,}",
        '  [ "$native" = "$platform" ] ||',
        f'    fail "node $name ($ep) should build $platform {WRONG_PLATFORM} ${{native:-nothing}} first"',
        '  echo "preflight: node $name ($ep) is up and builds $platform"',
        "}",
    ]
    ready = ready if ready and ready.timeout_seconds > 0 else None  # 0: one probe, the script as before
    if has_spares(nodes) or wake is not None or emulate:
        # Only a farm with several nodes on some platform (or idle stop and wake, or emulation) renders
        # the key, failover and wake part: any other farm keeps the script (the Builder's `create`) it had.
        return "\n".join(lines + _affine_tail(builder, nodes, wake, ready, load_bound, emulate)) + "\n"
    lines.append(f'[ -z "${{BKF_EMULATE:-}}" ] || fail "BKF_EMULATE: this script emulates nothing (one node per '
                 f'platform and no {EMULATE_KEY}): set {EMULATE_KEY} in the stack config"')
    # one node per platform: the node that fails is its platform's last, so the script stops naming both
    if ready is None:
        lines += ["( check_node " + _q([n.name, n.platform, n.endpoint, n.server_name]) + " ) || "
                  f"fail {shlex.quote(no_native_message(n.platform, '', n.name))}" for n in nodes]
    else:
        lines += ["declare -A plat ep sn", *_node_table(nodes), *render_await(ready)]
        lines += [f"await_any {n.name} || "
                  f'fail "{no_native_message(n.platform, " within ${ready_timeout}s", n.name)}"' for n in nodes]
    lines.append(f"bx rm {shlex.quote(builder)} >/dev/null 2>&1 || true")
    for argv in create_args(builder, nodes, _CERTS):
        lines.append(f"bx {_q(argv)} >/dev/null")
    lines += [
        f"out=$(bx inspect --bootstrap {shlex.quote(builder)} 2>&1) || "
        f"{{ echo \"$out\" >&2; fail 'builder {builder} failed to bootstrap'; }}",
        f'echo "builder {builder} ready: {" ".join(f"{n.name}={n.platform}" for n in nodes)}"',
    ]
    return "\n".join(lines) + "\n"


def has_spares(nodes: Sequence[BuilderNode]) -> bool:
    """True when some platform has more than one node (then a key picks among them)."""
    platforms = [n.platform for n in nodes]
    return len(set(platforms)) < len(platforms)


def _node_table(nodes: Sequence[BuilderNode]) -> list[str]:
    """bash: each node's platform, endpoint and server name in the arrays plat, ep and sn."""
    return [f"plat[{n.name}]={shlex.quote(n.platform)} ep[{n.name}]={shlex.quote(n.endpoint)} "
            f"sn[{n.name}]={shlex.quote(n.server_name)}" for n in nodes]


def _affine_tail(builder: str, nodes: Sequence[BuilderNode], wake: AnyWake | None = None,
                 ready: Readiness | None = None, load_bound: float = DEFAULT_C,
                 emulate: Sequence[str] = ()) -> list[str]:
    """The rest of the create script for a farm with spare nodes: `--key` (or $BKF_KEY) orders
    each platform's nodes by bounded loads over rendezvous hashing (components.builder.placement,
    its bash twin from components.builder.spread, with the nodes' running builds) and the first
    node that passes the preflight joins; without a key every node is checked and joins, each
    platform's least-loaded node first."""
    platforms: list[str] = []
    for n in nodes:
        if n.platform not in platforms:
            platforms.append(n.platform)
    b = shlex.quote(builder)
    lines = [
        'key=${BKF_KEY:-}',
        'while [ $# -gt 0 ]; do',
        '  case $1 in',
        '    --key) [ $# -ge 2 ] || fail "--key needs a value"; key=$2; shift 2;;',
        '    --key=*) key=${1#--key=}; shift;;',
        "    *) echo \"usage: $0 [--key KEY] (or BKF_KEY=KEY); the key (e.g. the repository) orders each"
        " platform's nodes\" >&2; exit 2;;",
        '  esac',
        'done',
        "declare -A plat ep sn",
        *_node_table(nodes),
    ]
    if ready is not None:
        lines += render_await(ready)
    lines += [
        "all=(" + " ".join(n.name for n in nodes) + ")",
        "platforms=(" + " ".join(shlex.quote(p) for p in platforms) + ")",
        # the nodes whose load is worth a dial: those that share their platform with another
        "shared=(" + " ".join(n.name for n in nodes if sum(m.platform == n.platform for m in nodes) > 1) + ")",
        *render_place(load_bound),
        *render_loads(),
        *render_strict(emulate),
        *render_keyless_settle(),
        *(render_wake(wake) if wake else []),
        # each platform's nodes in the order to try them: the key's bounded-load order, or without
        # a key least-loaded first (buildx sends a platform's builds to its first node)
        "declare -A orders; firsts=()",
        '[ "${#shared[@]}" -eq 0 ] || read_loads "${shared[@]}"',
        'for p in "${platforms[@]}"; do',
        '  cands=(); for n in "${all[@]}"; do [ "${plat[$n]}" != "$p" ] || cands+=("$n=${load[$n]:-0}"); done',
        '  mapfile -t order < <(place "$key" "${cands[@]}")',
        '  if [ -n "$key" ]; then echo "affinity: key $key orders $p as ${order[*]}"',
        '  elif [ "${#order[@]}" -gt 1 ]; then echo "spread: no key: $p least-loaded first: ${order[*]}"; fi',
        '  orders[$p]="${order[*]}"; firsts+=("${order[0]}")',
        "done",
        "joined=()",
        'if [ -z "$key" ]; then',
        "  # every node joins; each platform's places in the config order go to its nodes least-loaded first",
        '  declare -A at=(); byload=()',
        '  for n in "${all[@]}"; do',
        '    p=${plat[$n]}; read -ra order <<<"${orders[$p]}"',
        '    byload+=("${order[${at[$p]:-0}]}"); at[$p]=$(( ${at[$p]:-0} + 1 ))',
        '  done',
        '  all=("${byload[@]}")',
        *(['  wake "${all[@]}"'] if wake else []),
        # every node is checked before the script stops: all the problems at once
        *([AWAIT_ALL] if ready else [
            '  for n in "${all[@]}"; do',
            '    if ( check_node "$n" "${plat[$n]}" "${ep[$n]}" "${sn[$n]}" ); then joined+=("$n")',
            '    else failed+=("$n"); fi',
            "  done"]),
        "  settle_all",
        "else",
        *(['  wake "${firsts[@]}"'] if wake else []),
        '  for p in "${platforms[@]}"; do',
        '    read -ra order <<<"${orders[$p]}"',
        *(AWAIT_PICK if ready else [
            '    pick=""',
            '    for n in "${order[@]}"; do',
            "      # a subshell: a node that fails the preflight is skipped for the next in the key's order",
            '      if ( check_node "$n" "$p" "${ep[$n]}" "${sn[$n]}" ); then pick=$n; break; fi',
            '      echo "affinity: skipping $n" >&2',
            '    done',
            '    if [ -n "$pick" ]; then joined+=("$pick"); else no_native "$p" "" "${order[@]}" || exit 1; fi']),
        '  done',
        "fi",
        "emulate_on_hosts",
        f"bx rm {b} >/dev/null 2>&1 || true",
        "first=1; declare -A claimed=()",
        'for n in "${joined[@]}"; do',
        '  app=(); [ "$first" = 1 ] || app=(--append); first=0',
        # each platform is claimed once, by its first joined node (the key's pick, or the least
        # loaded): buildx keeps a platform only on the node that claimed it last (store/nodegroup.go
        # validateDuplicates strips it from the earlier ones) and sends the platform's builds to its
        # claimer, so a second claim would move the builds to the last node. A node claims no platform
        # but its own (and an emulated one it was given, said above); the others join unclaimed.
        '  claim=${extra[$n]:-}',
        '  if [ -z "${claimed[${plat[$n]}]:-}" ]; then claim=${plat[$n]}$claim; claimed[${plat[$n]}]=$n; fi',
        '  pl=(); [ -z "$claim" ] || pl=(--platform "${claim#,}")',
        f'  bx create "${{app[@]}}" --name {b} --driver remote --node "$n" "${{pl[@]}}" \\',
        '    --driver-opt "servername=${sn[$n]},cacert=$certs/ca.pem,cert=$certs/cert.pem,key=$certs/key.pem" \\',
        '    "${ep[$n]}" >/dev/null',
        "done",
        f"out=$(bx inspect --bootstrap {b} 2>&1) || "
        f"{{ echo \"$out\" >&2; fail 'builder {builder} failed to bootstrap'; }}",
        'ready=(); for n in "${joined[@]}"; do ready+=("$n=${plat[$n]}${extra[$n]:-}"); done',
        f'echo "builder {builder} ready: ${{ready[*]}}"',
    ]
    return lines


def render_delete_script(builder: str, buildx: str = "docker buildx") -> str:
    return (
        'export BUILDX_CONFIG="${BUILDX_CONFIG:-$HOME/.docker/buildx}"\n'
        f"{buildx} rm {shlex.quote(builder)} 2>/dev/null || true\n"
        f'rm -rf "${{BKF_CERT_DIR:-$BUILDX_CONFIG/certs/{builder}}}"\n'
    )
