"""Strict platforms in the create script (pure rendering): a platform builds on its own nodes, or
fails naming itself and the nodes tried, unless the stack opts into emulating it.

Why the script must decide: buildx (v0.36) sends a requested platform to the first node whose
configured `--platform` matches; a platform no node claims goes to a node whose workers list it
(emulated, with binfmt) or else to node 0, and a claimed platform whose node is down fails the
build with no fallback (docker/buildx#2119). BuildKit never refuses a foreign platform: it runs
it under QEMU if the kernel or its PATH can, or the RUN fails with "exec format error", and its
workers list every platform the host kernel runs through binfmt_misc besides their own (no setting
removes them). So the only place a farm can keep a platform off another architecture is which
nodes join, claiming what: each node claims its own platform only, and a platform with no native
node left either stops the script or, listed in builder.emulate ($BKF_EMULATE at run time), is
claimed explicitly by a node of another platform, said loudly.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

#: the config key of the opt-in, named in every message about it
EMULATE_KEY = "builder.emulate"


def no_native_message(platform: str, why: str, tried: str) -> str:
    """The one line of a platform with no native node left (bash words: `tried` may be "$*")."""
    return (f"no node of {platform} passed the preflight{why} (tried {tried}); a node of another architecture "
            f"builds {platform} only under emulation: list {platform} in {EMULATE_KEY} (or BKF_EMULATE) to "
            "allow that")


def render_strict(emulate: Sequence[str]) -> list[str]:
    """bash: the opt-in ($emulate, checked against $platforms), `no_native P WHY NODE...` (prints
    P's line; returns 0 when P may be emulated, 1 when not) and `emulate_on_hosts` (gives each
    emulated platform to the first joined node of another platform: extra[node] holds the
    ",platform" its `--platform` gains). Needs fail, platforms, plat, joined."""
    return [
        f"# platforms that may build on another architecture's node when none of their own passes ({EMULATE_KEY};",
        "# $BKF_EMULATE, space-separated, at run time)",
        f"read -ra emulate <<<\"${{BKF_EMULATE-{shlex.quote(' '.join(emulate)) if emulate else ''}}}\"",
        "declare -A emulable=() extra=(); emulated=()",
        'for p in "${emulate[@]}"; do',
        '  case " ${platforms[*]} " in',
        '    *" $p "*) emulable[$p]=1;;',
        "    *) fail \"BKF_EMULATE: '$p' is not a platform of this builder's nodes (allowed: ${platforms[*]},"
        f" space-separated, like {EMULATE_KEY})\";;",
        "  esac",
        "done",
        "no_native() {",
        "  local p=$1 why=$2; shift 2",
        '  if [ -z "${emulable[$p]:-}" ]; then',
        f'    echo "preflight: {no_native_message("$p", "$why", "$*")}" >&2',
        "    return 1",
        "  fi",
        f'  echo "preflight: no node of $p passed the preflight$why (tried $*): $p is emulated ({EMULATE_KEY})" >&2',
        '  emulated+=("$p")',
        "}",
        "emulate_on_hosts() {",
        "  local p n host",
        '  for p in "${emulated[@]}"; do',
        '    host=""',
        '    for n in "${joined[@]}"; do if [ "${plat[$n]}" != "$p" ]; then host=$n; break; fi; done',
        '    [ -n "$host" ] ||',
        f'      fail "no node of another platform passed the preflight to emulate $p on ({EMULATE_KEY})"',
        '    extra[$host]+=",$p"',
        f'    echo "emulating $p on $host ({EMULATE_KEY}): its $p builds run under QEMU, not natively" >&2',
        "  done",
        "}",
    ]


def render_keyless_settle() -> list[str]:
    """bash: `settle_all` after every node was checked without a key (needs failed, all, plat,
    platforms, no_native): a platform none of whose nodes passed goes to no_native; a platform
    with some nodes failed and some passed fails as before (without a key every node joins);
    every problem is printed before the script stops."""
    return [
        "settle_all() {",
        "  local p n bad=0 tried down",
        '  for p in "${platforms[@]}"; do',
        "    tried=(); down=()",
        '    for n in "${all[@]}"; do [ "${plat[$n]}" != "$p" ] || tried+=("$n"); done',
        '    for n in "${failed[@]}"; do [ "${plat[$n]}" != "$p" ] || down+=("$n"); done',
        '    [ "${#down[@]}" -gt 0 ] || continue',
        '    if [ "${#down[@]}" -lt "${#tried[@]}" ]; then',
        '      echo "preflight: ${down[*]} of $p failed the preflight (tried ${tried[*]}); without a key every node' +
        ' joins (with --key, the key\'s next node would)" >&2',
        "      bad=1",
        "    else",
        '      no_native "$p" "" "${tried[@]}" || bad=1',
        "    fi",
        "  done",
        '  [ "$bad" = 0 ] || exit 1',
        "}",
    ]
