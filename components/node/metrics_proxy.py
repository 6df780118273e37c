"""The node's metrics endpoint: buildkitd's /metrics and the farm's own series, behind mutual TLS.

Shipped to every node that has ``metrics.port`` set (without docstrings and annotations:
components/node/payload.py, shipped_metrics_proxy) and run by ``bkf-node.sh metrics``, so it uses
the standard library only and runs on Python 3.9 (Amazon Linux 2023's python3).

Why a proxy of our own and not stunnel or ghostunnel: buildkitd's debug address serves far more
than /metrics (pprof, /debug/cache/load which takes a POST, /debug/gc, the cache dump), and those
tunnels forward bytes, so every holder of a client certificate would reach all of it. This one
forwards exactly ``GET /metrics`` and answers anything else 404/405 itself. The debug address is a
root-only unix socket in the node's run dir (not even loopback: no local user, no RUN step, can
reach pprof). TLS is OpenSSL's, through ``ssl`` with ``CERT_REQUIRED`` against the farm's CA: a
client with no certificate, or one from another CA, fails the handshake before any HTTP.

The farm's series (added after buildkitd's, Prometheus text format 0.0.4):
  bkf_tls_cert_not_after_timestamp_seconds{cert="server"|"ca"}  when the node's certs expire
  bkf_state_volume_used_bytes / bkf_state_volume_size_bytes        the state (cache) volume
  bkf_gc_max_used_bytes                                            buildkitd's GC limit (maxUsedSpace)
  bkf_builds_running                                               builds in flight (its history)
  bkf_last_successful_build_timestamp_seconds                      the newest record without an error
  bkf_daemon_up                                                    1 when buildkitd answered this scrape
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterable, Mapping
from typing import Any

#: what Prometheus' text parser takes (buildkitd's promhttp answers it too when no Accept is sent)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: one scrape must not hang on a stuck daemon: each local call has this bound
LOCAL_TIMEOUT_S = 10
#: a client that connects and says nothing is dropped after this long (handshake included)
CLIENT_TIMEOUT_S = 15
_SIZE = re.compile(r'^\s*maxUsedSpace\s*=\s*"(\d+)GB"', re.MULTILINE)


def gc_max_used_bytes(buildkitd_toml: str) -> int | None:
    """The worker's maxUsedSpace (the first one in the file, [worker.oci]'s own), in bytes.

    buildkitd reads "GB" in binary units (the daemon tier sees 5GB as 5 GiB), and
    components/node/buildkitd_toml.py always writes whole GB with an explicit unit.
    """
    m = _SIZE.search(buildkitd_toml)
    return int(m.group(1)) * 2**30 if m else None


def history_figures(lines: Iterable[str]) -> tuple[int, float | None]:
    """(builds running, newest successful completion) from `buildctl debug histories --format '{{json .}}'`.

    The daemon first sends one event per active build (type STARTED, 0: omitted from the JSON),
    then one COMPLETE (1) per finished record; a failed record carries "error".
    """
    running, last_ok = 0, None
    for line in lines:
        line = line.strip()
        if not line:
            continue
        event = json.loads(line)
        record = event.get("record") or {}
        if event.get("type", 0) == 0:
            running += 1
        elif not record.get("error") and record.get("CompletedAt"):
            done = record["CompletedAt"]
            t = float(done.get("seconds", 0)) + float(done.get("nanos", 0)) / 1e9
            last_ok = t if last_ok is None else max(last_ok, t)
    return running, last_ok


def _num(v: float) -> str:
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


def render_series(values: Mapping[str, Any]) -> str:
    """The farm's series in Prometheus text format; a value that could not be read is left out."""
    help_ = {
        "bkf_tls_cert_not_after_timestamp_seconds": ("gauge", "When the node's certificates expire."),
        "bkf_state_volume_used_bytes": ("gauge", "Bytes used on the cache volume."),
        "bkf_state_volume_size_bytes": ("gauge", "Size of the cache volume."),
        "bkf_gc_max_used_bytes": ("gauge", "buildkitd's GC limit (maxUsedSpace)."),
        "bkf_builds_running": ("gauge", "Builds in flight on this node."),
        "bkf_last_successful_build_timestamp_seconds": ("gauge", "When the newest successful build finished."),
        "bkf_daemon_up": ("gauge", "1 when buildkitd answered this scrape."),
    }
    out: list[str] = []
    for name, (kind, text) in help_.items():
        v = values.get(name)
        if v is None:
            continue
        out += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        if isinstance(v, Mapping):
            out += [f'{name}{{cert="{label}"}} {_num(x)}' for label, x in v.items() if x is not None]
        else:
            out.append(f"{name} {_num(v)}")
    return "\n".join(out) + "\n"


def cert_not_after(path: str) -> float | None:
    """A PEM certificate's notAfter as unix time, read by OpenSSL itself (no parser of our own)."""
    try:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=path)
        certs = ctx.get_ca_certs()
    except (OSError, ssl.SSLError):
        return None
    # get_ca_certs lists CA certs only; a leaf is read through the private decoder as a fallback
    if not certs:
        try:
            certs = [ssl._ssl._test_decode_cert(path)]  # type: ignore[attr-defined]
        except (OSError, ssl.SSLError, AttributeError):
            return None
    return float(ssl.cert_time_to_seconds(str(certs[0]["notAfter"])))


class Node:
    """What the proxy reads on the node: the debug socket, the gRPC socket, certs, config, state dir."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def buildkit_metrics(self) -> str | None:
        # HTTP/1.0 (the daemon closes after the answer: no chunks) and no Accept header (promhttp
        # answers in the text format, which our series extend)
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(LOCAL_TIMEOUT_S)
                s.connect(self.args.debug_socket)
                s.sendall(b"GET /metrics HTTP/1.0\r\nHost: buildkitd\r\n\r\n")
                data = b"".join(iter(lambda: s.recv(65536), b""))
        except OSError:
            return None
        head, _, body = data.partition(b"\r\n\r\n")
        return body.decode() if head.split(b" ")[1:2] == [b"200"] else None

    def histories(self) -> tuple[int, float | None] | None:
        try:
            r = subprocess.run([self.args.buildctl, "--addr", f"unix://{self.args.socket}", "--timeout",
                                str(LOCAL_TIMEOUT_S), "debug", "histories", "--format", "{{json .}}"],
                               capture_output=True, text=True, timeout=LOCAL_TIMEOUT_S * 2, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if r.returncode != 0:
            return None
        try:
            return history_figures(r.stdout.splitlines())
        except (ValueError, AttributeError):
            return None

    def farm_series(self, daemon_up: bool) -> str:
        values: dict[str, Any] = {"bkf_daemon_up": 1 if daemon_up else 0}
        tls = self.args.tls_dir
        values["bkf_tls_cert_not_after_timestamp_seconds"] = {
            "server": cert_not_after(f"{tls}/cert.pem"), "ca": cert_not_after(f"{tls}/ca.pem")}
        try:
            st = os.statvfs(self.args.state_dir)
            values["bkf_state_volume_size_bytes"] = st.f_blocks * st.f_frsize
            values["bkf_state_volume_used_bytes"] = (st.f_blocks - st.f_bfree) * st.f_frsize
        except OSError:
            pass
        try:
            with open(self.args.config) as f:
                values["bkf_gc_max_used_bytes"] = gc_max_used_bytes(f.read())
        except OSError:
            pass
        figures = self.histories() if daemon_up else None
        if figures is not None:
            values["bkf_builds_running"], values["bkf_last_successful_build_timestamp_seconds"] = figures
        return render_series(values)

    def scrape(self) -> str:
        own = self.buildkit_metrics()
        return (own or "") + self.farm_series(own is not None)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], node: Node, tls: ssl.SSLContext) -> None:
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        super().__init__(addr, _Handler)
        self.node, self.tls = node, tls

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = self.socket.accept()
        sock.settimeout(CLIENT_TIMEOUT_S)
        # the handshake runs in the handler's thread: a silent client holds only its own thread
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        # one line, not a traceback: a refused handshake is the normal answer to a client without a cert
        err = sys.exc_info()[1]
        print(f"bkf-metrics: {client_address[0]}: {type(err).__name__}: {err}", file=sys.stderr, flush=True)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: str, content_type: str = "text/plain; charset=utf-8") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self._send(404, "only /metrics is served here\n")
            return
        self._send(200, self.server.node.scrape(), CONTENT_TYPE)

    def _refuse(self) -> None:
        self._send(405, "only GET /metrics is served here\n")

    do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse


def server_context(tls_dir: str) -> ssl.SSLContext:
    """Client certificates required, from the farm's CA. Loaded once: a certificate rotation
    restarts buildkitd, and this endpoint with it (bkf-metrics.service is PartOf it; the supervisor
    restarts both)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=f"{tls_dir}/ca.pem")
    ctx.load_cert_chain(f"{tls_dir}/cert.pem", f"{tls_dir}/key.pem")
    return ctx


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bkf-metrics", description="the node's metrics endpoint (mTLS)")
    p.add_argument("--listen", default="0.0.0.0", help="address to listen on")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls-dir", required=True, help="ca.pem (clients' CA), cert.pem, key.pem")
    p.add_argument("--debug-socket", required=True, help="buildkitd's debugAddress (a unix socket)")
    p.add_argument("--socket", required=True, help="buildkitd's gRPC unix socket (its history)")
    p.add_argument("--buildctl", default="buildctl")
    p.add_argument("--config", required=True, help="buildkitd.toml (the GC limit)")
    p.add_argument("--state-dir", required=True)
    args = p.parse_args(argv)
    try:
        tls = server_context(args.tls_dir)
    except (OSError, ssl.SSLError) as e:
        print(f"bkf-metrics: ERROR: cannot load the TLS files in {args.tls_dir}: {e}", file=sys.stderr)
        return 1
    server = _Server((args.listen, args.port), Node(args), tls)
    # SIGTERM ends it at once: as a container's PID 1 (the Kubernetes sidecar) the kernel would
    # ignore the signal's default action, and the pod would wait out its whole grace period
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"bkf-metrics: serving /metrics on {args.listen}:{args.port} (mTLS: clients of {args.tls_dir}/ca.pem)",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
