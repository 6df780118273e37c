"""Farm status: every node as its own daemon reports it, from the stack outputs and a client cert.

    bkf status [--stack S | --outputs FILE] [--json]     (`python -m components.status` is the same)

Per node: its state (up; stopped or waking when idle stop stopped its instance, or scaled its
StatefulSet to 0, on purpose; DOWN),
with the real error of a node that does not answer (TLS, refused, timeout), BuildKit version,
platforms, cache size (`buildctl du`) and the GC limit the daemon holds it to (its own policy from
`debug workers`), builds running now and the last build's end (`debug histories`), and the expiry
of the server cert the node serves. Works with any backend: it only dials the endpoints. Needs
`buildctl` on PATH. The command (exit codes, reading the outputs) is bkf/app.py.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import socket
import ssl
import subprocess
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

#: EC2 instance states of a node idle stop stopped (or that CI is waking): not a failure (on Kubernetes
#: bkf/k8s.py says a StatefulSet's scale in these words: at 0 stopped, at 1 pending)
STOPPED_ON_PURPOSE = {"stopping": "stopped", "stopped": "stopped", "pending": "waking"}


@dataclass
class NodeStatus:
    name: str
    platform: str
    endpoint: str
    reachable: bool = False
    error: str = ""
    version: str = ""
    platforms: list[str] = field(default_factory=list)
    cache_bytes: int | None = None
    gc_limit_bytes: int | None = None
    running: int | None = None
    last_build: str | None = None
    cert_expiry: str | None = None
    #: up, down, or stopped / waking (idle stop stopped its instance on purpose); "" until known
    state: str = ""

    def condition(self) -> str:
        return self.state or ("up" if self.reachable else "down")


@dataclass(frozen=True)
class Tls:
    ca: Path
    cert: Path
    key: Path


def _rfc3339(ts: dict[str, Any] | None) -> str | None:
    if not ts or "seconds" not in ts:
        return None
    t = dt.datetime.fromtimestamp(int(ts["seconds"]) + int(ts.get("nanos", 0)) / 1e9, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _platform(p: dict[str, str]) -> str:
    return "/".join(x for x in (p.get("os"), p.get("architecture"), p.get("variant")) if x)


def gc_limit(policy: Sequence[dict[str, Any]]) -> int | None:
    """The space the daemon's GC keeps the whole cache under: its `all` rule's maxUsedSpace (the
    last rule when none says all), as `buildctl debug workers --verbose` shows it."""
    if not policy:
        return None
    rule = next((r for r in policy if r.get("all")), policy[-1])
    return int(rule.get("maxUsedSpace") or rule.get("keepBytes") or 0) or None


def summarize(info: dict[str, Any], workers: list[dict[str, Any]], du: list[dict[str, Any]] | None,
              histories: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """What the daemon's own answers say (pure: the unit tier feeds it recorded JSON)."""
    w = workers[0] if workers else {}
    done = [r["record"] for r in histories if r.get("record", {}).get("CompletedAt")]
    running = [r for r in histories if not r.get("record", {}).get("CompletedAt")]
    last = max(done, key=lambda r: (r["CompletedAt"]["seconds"], r["CompletedAt"].get("nanos", 0)), default=None)
    return {
        "version": info.get("buildkitVersion", {}).get("version", ""),
        "platforms": [_platform(p) for p in w.get("platforms") or []],
        "cache_bytes": sum(int(r.get("size") or 0) for r in du or []),
        "gc_limit_bytes": gc_limit(w.get("gcPolicy") or []),
        "running": len(running),
        "last_build": _rfc3339(last["CompletedAt"]) if last else None,
    }


def _buildctl(node: dict[str, str], tls: Tls, *args: str, timeout: float) -> str:
    argv = ["buildctl", "--addr", node["endpoint"], "--tlsservername", node["serverName"],
            "--tlscacert", str(tls.ca), "--tlscert", str(tls.cert), "--tlskey", str(tls.key), *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
        raise RuntimeError(lines[-1] if lines else f"buildctl exited {r.returncode}")
    return r.stdout


def served_cert_expiry(node: dict[str, str], tls: Tls, timeout: float) -> str:
    """notAfter of the cert the node serves, read in a verified mTLS handshake."""
    host, port = node["endpoint"].removeprefix("tcp://").rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(tls.ca))
    ctx.load_cert_chain(str(tls.cert), str(tls.key))
    with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as s, \
            ctx.wrap_socket(s, server_hostname=node["serverName"]) as t:
        cert = t.getpeercert()
    assert cert is not None
    return dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(str(cert["notAfter"])), dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def node_status(node: dict[str, str], tls: Tls, timeout: float = 15) -> NodeStatus:
    st = NodeStatus(node["name"], node["platform"], node["endpoint"], state="down")
    try:
        info = json.loads(_buildctl(node, tls, "--timeout", str(int(timeout)), "debug", "info",
                                    "--format", "{{json .}}", timeout=timeout + 5))
    except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
        st.error = str(e) if not isinstance(e, subprocess.TimeoutExpired) else f"no answer in {timeout:.0f} s"
        return st
    st.reachable = True
    st.state = "up"
    try:
        workers = json.loads(_buildctl(node, tls, "debug", "workers", "--format", "{{json .}}", timeout=timeout))
        du = json.loads(_buildctl(node, tls, "du", "--format", "{{json .}}", timeout=timeout))
        hist = [json.loads(x) for x in
                _buildctl(node, tls, "debug", "histories", "--format", "{{json .}}", timeout=timeout).splitlines()
                if x.strip()]
        for k, v in summarize(info, workers, du, hist).items():
            setattr(st, k, v)
        st.cert_expiry = served_cert_expiry(node, tls, timeout)
    except (RuntimeError, subprocess.TimeoutExpired, OSError, ValueError) as e:
        st.error = f"answered, then: {e}"
    return st


def farm_status(nodes: Sequence[dict[str, str]], tls: Tls, timeout: float = 15) -> list[NodeStatus]:
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda n: node_status(n, tls, timeout), nodes))


def apply_instance_states(nodes: Sequence[NodeStatus], instance_states: Mapping[str, str]) -> None:
    """A node that does not answer while its instance is stopped (or starting) on purpose is
    stopped / waking, not down; one whose instance runs (or whose state is unknown) stays down."""
    for n in nodes:
        if not n.reachable and instance_states.get(n.name) in STOPPED_ON_PURPOSE:
            n.state = STOPPED_ON_PURPOSE[instance_states[n.name]]


def healthy(nodes: Sequence[NodeStatus]) -> bool:
    """Every node answered in full, or is stopped on purpose."""
    return all((n.reachable and not n.error) or n.condition() in ("stopped", "waking") for n in nodes)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1000  # type: ignore[assignment]
    return "-"  # pragma: no cover


def render_table(nodes: Sequence[NodeStatus], width: int = 200) -> str:
    head = ["NODE", "PLATFORM", "STATE", "BUILDKIT", "PLATFORMS", "CACHE", "GC LIMIT", "RUNNING",
            "LAST BUILD", "CERT EXPIRY"]
    table = Table(*head, box=None, pad_edge=False, show_edge=False, header_style="bold")
    for n in nodes:
        state = n.condition()
        table.add_row(n.name, n.platform, state.upper() if state == "down" else state, n.version or "-",
                      ",".join(n.platforms[:3]) + (",..." if len(n.platforms) > 3 else "") or "-",
                      _size(n.cache_bytes), _size(n.gc_limit_bytes),
                      "-" if n.running is None else str(n.running), n.last_build or "-", n.cert_expiry or "-")
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, markup=False, emoji=False, highlight=False).print(table)
    lines = [x.rstrip() for x in out.getvalue().splitlines()]
    lines += [f"{n.name} ({n.endpoint}): {n.error}" for n in nodes if n.error]
    return "\n".join(lines) + "\n"


def main() -> None:
    """`python -m components.status ARGS` is `bkf status ARGS`."""
    import sys

    from bkf.app import main as bkf

    bkf(["status", *sys.argv[1:]])


if __name__ == "__main__":
    main()
