"""buildx commands and CI forms for a multi-node remote builder (pure functions).

The create script is the ONE way the builder is made: the Builder component runs
it (secrets in its environment), and it is exported as a stack output for CI to
run itself. Its cert files are written with absolute paths (buildx's remote
driver takes paths, not PEM contents) and mode 0600.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

#: environment variables the create script reads PEM contents from
ENV_CA = "BKF_TLS_CA"
ENV_CERT = "BKF_TLS_CERT"
ENV_KEY = "BKF_TLS_KEY"


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
                         timeout_s: int = 60) -> str:
    """A bash script that (re)creates the builder and runs the preflight.

    Reads PEMs from $BKF_TLS_CA/$BKF_TLS_CERT/$BKF_TLS_KEY; honours $BUILDX_CONFIG
    (default ~/.docker/buildx); writes certs to $BKF_CERT_DIR (default
    $BUILDX_CONFIG/certs/<builder>).
    """
    expected = " ".join(f"{n.name}={n.platform}" for n in nodes)
    lines = [
        "#!/usr/bin/env bash",
        f"# Creates the multi-node buildx builder {builder!r} (remote driver) and checks every node.",
        f"# Needs PEM contents in ${ENV_CA}, ${ENV_CERT} and ${ENV_KEY}.",
        "set -euo pipefail",
        f': "${{{ENV_CA}:?set {ENV_CA} to the farm CA certificate (PEM)}}"',
        f': "${{{ENV_CERT}:?set {ENV_CERT} to the client certificate (PEM)}}"',
        f': "${{{ENV_KEY}:?set {ENV_KEY} to the client key (PEM)}}"',
        'export BUILDX_CONFIG="${BUILDX_CONFIG:-$HOME/.docker/buildx}"',
        f'certs="${{BKF_CERT_DIR:-$BUILDX_CONFIG/certs/{builder}}}"',
        'mkdir -p "$certs" && chmod 0700 "$certs"',
        '# buildx reads cert files by absolute path at every dial',
        'certs=$(cd "$certs" && pwd -P)',
        'case "$certs" in *,*) echo "cert dir $certs must not contain a comma" >&2; exit 1;; esac',
        "(",
        "  umask 077",
        f'  printf "%s\\n" "${ENV_CA}" > "$certs/ca.pem.tmp" && mv -f "$certs/ca.pem.tmp" "$certs/ca.pem"',
        f'  printf "%s\\n" "${ENV_CERT}" > "$certs/cert.pem.tmp" && mv -f "$certs/cert.pem.tmp" "$certs/cert.pem"',
        f'  printf "%s\\n" "${ENV_KEY}" > "$certs/key.pem.tmp" && mv -f "$certs/key.pem.tmp" "$certs/key.pem"',
        ")",
        f"bx() {{ {buildx} \"$@\"; }}",
        f"bx rm {shlex.quote(builder)} >/dev/null 2>&1 || true",
    ]
    for argv in create_args(builder, nodes, _CERTS):
        lines.append(f"bx {_q(argv)} >/dev/null")
    lines += [
        "# Preflight: bootstrap every node; fails with the node's real error",
        "# (TLS, unreachable) and checks each node's platform.",
        f"out=$(bx inspect --bootstrap {shlex.quote(builder)} 2>&1) || "
        f"{{ echo \"$out\" >&2; echo 'preflight: builder {builder} failed to bootstrap' >&2; exit 1; }}",
        f"for want in {expected}; do",
        '  node=${want%%=*}; platform=${want#*=}',
        "  # the Platforms line of this node, pinned ones marked '*': the daemon's",
        "  # own platforms are the unmarked ones, and buildx drops a pinned duplicate",
        '  line=$(awk -v n="$node" \'$1=="Name:"{cur=$2} cur==n && $1=="Platforms:"{sub(/^[^:]*:[ \\t]*/,""); print; exit}\' <<<"$out")',
        '  status=$(awk -v n="$node" \'$1=="Name:"{cur=$2} cur==n && $1=="Status:"{print $2; exit}\' <<<"$out")',
        '  if [ "$status" != running ]; then echo "$out" >&2; echo "preflight: node $node is ${status:-missing}, not running" >&2; exit 1; fi',
        '  others=$(tr -d " " <<<"$line" | tr "," "\\n" | grep -v "\\*$" | grep -vx "$platform" || true)',
        '  native=$(tr -d " " <<<"$line" | tr "," "\\n" | grep -v "\\*$" | head -n1 || true)',
        '  if [ -n "$native" ] && [ "$native" != "$platform" ] && ! grep -qx "$platform" <<<"$others"; then',
        '    echo "$out" >&2',
        '    echo "preflight: node $node should build $platform but its daemon reports: $line" >&2; exit 1',
        "  fi",
        "done",
        f'echo "builder {builder} ready: {expected}"',
    ]
    # timeout_s bounds each bootstrap dial through buildx's default; kept for CI docs
    del timeout_s
    return "\n".join(lines) + "\n"


def render_delete_script(builder: str, buildx: str = "docker buildx") -> str:
    return (
        'export BUILDX_CONFIG="${BUILDX_CONFIG:-$HOME/.docker/buildx}"\n'
        f"{buildx} rm {shlex.quote(builder)} 2>/dev/null || true\n"
        f'rm -rf "${{BKF_CERT_DIR:-$BUILDX_CONFIG/certs/{builder}}}"\n'
    )


def setup_buildx_action(nodes: Sequence[BuilderNode]) -> dict[str, object]:
    """Inputs for docker/setup-buildx-action with the remote driver.

    The first node is `endpoint`; the rest go to `append`. PEM contents go in the
    env vars BUILDER_NODE_<i>_AUTH_TLS_{CACERT,CERT,KEY} (i follows that order);
    the server name travels in driver-opts, as the action has no env var for it.
    """
    if not nodes:
        raise ValueError("no nodes")
    first, rest = nodes[0], nodes[1:]
    append = [{"name": n.name, "endpoint": n.endpoint, "platforms": n.platform,
               "driver-opts": [f"servername={n.server_name}"]} for n in rest]
    env: dict[str, str] = {}
    for i in range(len(nodes)):
        # env var name -> the stack output whose value it takes
        env[f"BUILDER_NODE_{i}_AUTH_TLS_CACERT"] = "caCert"
        env[f"BUILDER_NODE_{i}_AUTH_TLS_CERT"] = "clientCert"
        env[f"BUILDER_NODE_{i}_AUTH_TLS_KEY"] = "clientKey"
    return {
        "driver": "remote",
        "endpoint": first.endpoint,
        "platforms": first.platform,
        "driver-opts": f"servername={first.server_name}",
        "append": _yaml_list(append),
        "env": env,
    }


def _yaml_list(items: Sequence[dict[str, object]]) -> str:
    """A tiny YAML emitter for the action's `append` input (strings and string lists)."""
    out: list[str] = []
    for item in items:
        prefix = "- "
        for k, v in item.items():
            if isinstance(v, list):
                out.append(f"{prefix}{k}:")
                out += [f"    - {json.dumps(x)}" for x in v]
            else:
                out.append(f"{prefix}{k}: {json.dumps(v)}")
            prefix = "  "
    return "\n".join(out) + ("\n" if out else "")
