"""Farm status: every node as its own daemon reports it, from the stack outputs and a client cert.

    pulumi stack output --json --show-secrets | python -m components.status [--json]
    python -m components.status --stack local [--json]      (runs `pulumi stack output` itself)
    python -m components.status --outputs outputs.json [--client NAME]

Per node: reachable or not (with the real error: TLS, refused, timeout), BuildKit version,
platforms, cache size (`buildctl du`) and the GC limit the daemon holds it to (its own policy from
`debug workers`), builds running now and the last build's end (`debug histories`), and the expiry
of the server cert the node serves. Works with any backend: it only dials the endpoints. Needs
`buildctl` on PATH. Exit status 0 when every node answered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


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
    st = NodeStatus(node["name"], node["platform"], node["endpoint"])
    try:
        info = json.loads(_buildctl(node, tls, "--timeout", str(int(timeout)), "debug", "info",
                                    "--format", "{{json .}}", timeout=timeout + 5))
    except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
        st.error = str(e) if not isinstance(e, subprocess.TimeoutExpired) else f"no answer in {timeout:.0f} s"
        return st
    st.reachable = True
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


def farm_status(outputs: dict[str, Any], client: str | None = None, timeout: float = 15) -> list[NodeStatus]:
    if not shutil.which("buildctl"):
        raise SystemExit("farm status needs buildctl on PATH")
    cert = outputs["clientCerts"][client] if client else outputs["clientCert"]
    key = outputs["clientKeys"][client] if client else outputs["clientKey"]
    if not isinstance(key, str) or "PRIVATE KEY" not in key:
        raise SystemExit("the client key is missing: use `pulumi stack output --json --show-secrets`")
    with tempfile.TemporaryDirectory(prefix="bkf-status-") as d:
        tls = Tls(Path(d, "ca.pem"), Path(d, "cert.pem"), Path(d, "key.pem"))
        tls.ca.write_text(outputs["caCert"])
        tls.cert.write_text(cert)
        tls.key.touch(0o600)
        tls.key.write_text(key)
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(lambda n: node_status(n, tls, timeout), outputs["nodes"]))


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1000  # type: ignore[assignment]
    return "-"  # pragma: no cover


def render_table(nodes: Sequence[NodeStatus]) -> str:
    head = ["NODE", "PLATFORM", "STATE", "BUILDKIT", "PLATFORMS", "CACHE", "GC LIMIT", "RUNNING",
            "LAST BUILD", "CERT EXPIRY"]
    rows = [head]
    for n in nodes:
        rows.append([n.name, n.platform, "up" if n.reachable else "DOWN", n.version or "-",
                     ",".join(n.platforms[:3]) + (",..." if len(n.platforms) > 3 else "") or "-",
                     _size(n.cache_bytes), _size(n.gc_limit_bytes),
                     "-" if n.running is None else str(n.running), n.last_build or "-", n.cert_expiry or "-"])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    out += [f"{n.name} ({n.endpoint}): {n.error}" for n in nodes if n.error]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m components.status", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--outputs", help="a file of `pulumi stack output --json --show-secrets` ('-': stdin)")
    p.add_argument("--stack", help="run `pulumi stack output` for this stack")
    p.add_argument("--client", help="a client name of pki.clients (default: the first)")
    p.add_argument("--timeout", type=float, default=15, help="seconds per node call")
    a = p.parse_args(argv)
    if a.outputs and a.outputs != "-":
        raw = Path(a.outputs).read_text()
    elif a.outputs == "-" or (not a.stack and not sys.stdin.isatty()):
        raw = sys.stdin.read()
    else:
        cmd = ["pulumi", "stack", "output", "--json", "--show-secrets", *(["--stack", a.stack] if a.stack else [])]
        raw = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    nodes = farm_status(json.loads(raw), a.client, a.timeout)
    if a.json:
        print(json.dumps([asdict(n) for n in nodes], indent=2))
    else:
        sys.stdout.write(render_table(nodes))
    return 0 if all(n.reachable and not n.error for n in nodes) else 1


if __name__ == "__main__":
    sys.exit(main())
