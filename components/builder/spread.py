"""Bounded loads in the create script (pure rendering): each node's running builds, read from the
node itself, and the bash twin of `components.builder.placement.place`.

The load is what the daemon's own history API says: `buildctl debug histories` over the farm's
mTLS, one line per record, a record without a completion time being a build in flight (the same
reading as the nodes' idle check and drain). A node whose history cannot be read (down, stopped,
no buildctl on the machine that runs the script) counts as 0, and the script says so: with every
load 0 the order is plain rendezvous, what the script did before loads were read.

The bash `place` computes the bound with integers: c is rendered as the exact fraction of the
decimal it prints as (1.25 -> 5/4), as `placement.bound` computes it, so the twin and the Python
function agree on every input (tests/unit/test_spread.py runs the rendered function against
`place` on generated keys, loads and c).
"""

from __future__ import annotations

from fractions import Fraction

from components.builder.placement import DEFAULT_C, bound

#: a record of `debug histories` rendered as one word: "running" for a build in flight
HISTORY_FORMAT = "{{if .Record.CompletedAt}}done{{else}}running{{end}}"
#: what a node whose load could not be read counts as (the script's output says so)
UNKNOWN_LOAD = 0


def c_fraction(c: float) -> tuple[int, int]:
    """c as (numerator, denominator) of the decimal it prints as: placement.bound's exact c."""
    bound(0, 1, c)  # refuses a c that place() refuses
    f = Fraction(repr(c))
    return f.numerator, f.denominator


def render_place(c: float = DEFAULT_C) -> list[str]:
    """bash: `rank KEY NODE...` (rendezvous order) and `place KEY NODE=LOAD...` (the try-order of
    `placement.place(key, nodes, loads, c)`, one node a line; an empty key: least-loaded first)."""
    num, den = c_fraction(c)
    return [
        "# rendezvous order: weight = first 64 bits of sha256(key NUL node), highest first",
        "rank() {",
        '  local k=$1 n; shift',
        '  for n in "$@"; do',
        r"""    printf '%s %s\n' "$(printf '%s\0%s' "$k" "$n" | sha256sum | cut -c1-16)" "$n" """.rstrip(),
        "  done | LC_ALL=C sort -k1,1r -k2,2 | cut -d' ' -f2",
        "}",
        f"# bound TOTAL N: ceil(c * (TOTAL + 1) / N) with c = {num}/{den} (builder.loadBound), in integers",
        "bound() {",
        f"  echo $(( ({num} * ($1 + 1) + {den} * $2 - 1) / ({den} * $2) ))",
        "}",
        "# bounded loads over the rendezvous order (components/builder/placement.py): nodes at or over",
        "# the bound move, in their rendezvous order, behind the others; no key: least-loaded first",
        "place() {",
        '  local k=$1 a n total=0 cap; shift',
        "  local -A ld=()",
        '  for a in "$@"; do n=${a%=*}; ld[$n]=${a##*=}; total=$((total + ld[$n])); done',
        '  if [ -z "$k" ]; then',
        """    for n in "${!ld[@]}"; do printf '%s %s\\n' "${ld[$n]}" "$n"; done |""",
        "      LC_ALL=C sort -k1,1n -k2,2 | cut -d' ' -f2",
        "    return",
        "  fi",
        '  cap=$(bound "$total" "${#ld[@]}")',
        '  mapfile -t ord < <(rank "$k" "${!ld[@]}")',
        '  for n in "${ord[@]}"; do [ "${ld[$n]}" -ge "$cap" ] || echo "$n"; done',
        '  for n in "${ord[@]}"; do [ "${ld[$n]}" -lt "$cap" ] || echo "$n"; done',
        "}",
    ]


def render_loads() -> list[str]:
    """bash: `read_loads NODE...` fills the array `load` with each node's running builds, asking
    the nodes at once (needs ep, sn, certs, probe and probe_timeout); a node that does not answer
    counts as 0. Each read has the probe's bound (builder.probeTimeoutSeconds, $BKF_PROBE_TIMEOUT;
    $BKF_LOAD_TIMEOUT overrides it for the reads alone): the reads run side by side, so a silent
    node costs the bound once here and once more in its own probe."""
    return [
        "load_timeout=${BKF_LOAD_TIMEOUT:-$probe_timeout}",
        "declare -A load=()",
        "read_loads() {",
        "  local n pid why rc; local -A pids=()",
        '  for n in "$@"; do load[$n]=' + str(UNKNOWN_LOAD) + "; done",
        "  if ! command -v buildctl >/dev/null; then",
        """    echo "load: no buildctl on PATH: every node's load counts as 0 (plain rendezvous order)\"""",
        "    return 0",
        "  fi",
        # -k 1: buildctl takes TERM as a cancel and then still waits on its dial (a silent node's
        # read took 20 s under `timeout 10`); KILL one second later holds the bound
        '  for n in "$@"; do',
        '    timeout -k 1 "$load_timeout" buildctl --timeout "$load_timeout" --addr "${ep[$n]}" \\',
        '      --tlsservername "${sn[$n]}" --tlscacert "$certs/ca.pem" --tlscert "$certs/cert.pem" \\',
        f"""      --tlskey "$certs/key.pem" debug histories --format '{HISTORY_FORMAT}' \\""",
        '      >"$probe/load-$n" 2>&1 &',
        "    pids[$n]=$!",
        "  done",
        '  for n in "$@"; do',
        '    pid=${pids[$n]}',
        '    if wait "$pid"; then',
        """      load[$n]=$(grep -c '^running' "$probe/load-$n" || true)""",
        "    else",
        "      rc=$?",
        "      # no answer within the bound (timeout's 124, or 137 after its KILL): the node is silent,",
        "      # and its probe is not made once more (check_node)",
        '      [ "$rc" != 124 ] && [ "$rc" != 137 ] || silent[$n]=1',
        """      why=$(grep -v '^[[:space:]]*$' "$probe/load-$n" | tail -n 1 || true)""",
        '      echo "load: cannot read the running builds of $n' +
        ' (${why:-no answer in ${load_timeout}s}): counts as 0"',
        "    fi",
        "  done",
        '  local shown=(); for n in "$@"; do shown+=("$n=${load[$n]}"); done',
        '  echo "load: running builds ${shown[*]}"',
        "}",
    ]
