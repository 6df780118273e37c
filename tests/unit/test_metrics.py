"""metrics.port: config, rendering (TOML, env, payload, security group, policy pack) and the proxy itself.

The proxy runs here for real on loopback against a stand-in debug socket (a unix HTTP server with
buildkitd's paths), with openssl certificates: what it forwards and whom it lets in. The daemon
tier (tests/daemons/test_metrics.py) does the same against a real node.
"""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from components.backends.aws.components import ingress_ports
from components.config import ConfigError, parse_config
from components.contracts.payload import payload_files
from components.node import metrics_proxy as mp
from components.node.buildkitd_toml import render_buildkitd_toml
from components.node.layout import METRICS_PROXY_FILE, METRICS_UNIT_FILE
from components.node.payload import USER_DATA_LIMIT, render_cert_bundle, shipped_metrics_proxy
from components.node.render import render
from harness.hosts import Pem, https_get, openssl_pki
from review.policy import checks as c
from review.policy.buildkitd import nodes_serve_mtls, toml_tls_problems
from review.policy.checks import Settings

SSH = {"backend": "ssh", "nodes": [{"name": "amd64-1", "platform": "linux/amd64", "host": "10.0.0.1"}],
       "ssh": {"privateKeyPath": "k"}}


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


# ------------------------------------------------------------------ config and rendering

def test_off_by_default_and_the_node_is_what_it_was() -> None:
    cfg = parse_config(SSH)
    assert cfg.metrics.port == 0 and not cfg.metrics.enabled
    bundle = render(cfg, cfg.nodes[0], cert_source="stdin")
    assert "debugAddress" not in tomllib.loads(bundle.buildkitd_toml)["grpc"]
    files = payload_files(bundle.payload())
    assert METRICS_PROXY_FILE not in files and METRICS_UNIT_FILE not in files
    assert "BKF_METRICS_PORT=0" in bundle.payload()


def test_on_renders_a_unix_debug_socket_the_proxy_and_its_unit() -> None:
    cfg = parse_config({**SSH, "metrics": {"port": 9464}})
    bundle = render(cfg, cfg.nodes[0], cert_source="stdin")
    grpc = tomllib.loads(bundle.buildkitd_toml)["grpc"]
    # a socket in the root-only run dir, never a TCP address
    assert grpc["debugAddress"] == "unix:///run/buildkit/debug.sock"
    assert grpc["address"] == ["tcp://0.0.0.0:1234", "unix:///run/buildkit/buildkitd.sock"]
    files = payload_files(bundle.payload())
    assert files[METRICS_PROXY_FILE] == shipped_metrics_proxy().rstrip("\n")
    unit = files[METRICS_UNIT_FILE]
    assert "PartOf=buildkitd.service" in unit and "WantedBy=buildkitd.service" in unit
    assert "bkf-node.sh metrics" in unit
    assert "BKF_METRICS_PORT=9464" in bundle.payload()


def test_config_refuses_the_build_port_and_kubernetes_without_a_sidecar_image() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config({**SSH, "metrics": {"port": 1234}})
    assert "metrics.port: 1234 is buildkit.port, the gRPC port" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config({**SSH, "metrics": {"port": 70000}})
    assert "metrics.port: 70000 is not an integer from 0 to 65535 (0: off)" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config({"backend": "kubernetes", "nodes": [{"name": "amd64-1", "platform": "linux/amd64"}],
                      "allowedCidrs": ["10.0.0.0/8"], "metrics": {"port": 9464}})
    # Kubernetes: the endpoint is a sidecar (tests/unit/test_kubernetes_metrics.py), of an image with python3
    assert "kubernetes.metricsImage: '': metrics.port (9464) runs its endpoint in a sidecar container" in str(e.value)


def test_the_shipped_proxy_is_the_module_without_docstrings_and_annotations() -> None:
    shipped = shipped_metrics_proxy()
    assert '"""' not in shipped and "-> " not in shipped
    for name in ("def gc_max_used_bytes", "def history_figures", "CERT_REQUIRED", "bkf_daemon_up"):
        assert name in shipped
    compile(shipped, "bkf-metrics.py", "exec")


def test_aws_user_data_with_idle_stop_metrics_and_otel_fits() -> None:
    import gzip
    raw = {"backend": "aws", "nodes": [{"name": "arm64-1", "platform": "linux/arm64"}],
           "allowedCidrs": ["10.0.0.0/16"], "idleStop": {"afterMinutes": 30}, "metrics": {"port": 9464},
           "otel": {"endpoint": "http://otel-collector.example.internal:4317"}}
    cfg = parse_config(raw, aws_region="us-east-1")
    payload = render(cfg, cfg.nodes[0], cert_source="ssm", ssm_prefix="/buildkit-farm/production/arm64-1",
                     aws_region="us-east-1", data_fstab=True, init="systemd",
                     per_boot_hook=True).payload(data_device="/dev/sdf")
    size = len(gzip.compress(payload.encode(), compresslevel=9, mtime=0))
    print(f"\nuser data with idleStop, metrics and otel: {size} bytes gzipped of {USER_DATA_LIMIT}")
    assert size <= USER_DATA_LIMIT


def test_security_group_opens_the_metrics_port_only_when_on() -> None:
    assert ingress_ports(1234, 0) == [(1234, "buildkitd gRPC (mTLS)")]
    assert ingress_ports(1234, 9464) == [(1234, "buildkitd gRPC (mTLS)"), (9464, "metrics (mTLS)")]


def test_policy_pack_takes_the_metrics_port_and_a_unix_debug_socket_only() -> None:
    s = Settings.from_stack_config({"buildkit-farm:metrics": json.dumps({"port": 9464})})
    assert s.ports == (1234, 9464)

    def sg(port: int) -> c.Resource:
        rule = {"protocol": "tcp", "fromPort": port, "toPort": port, "cidrBlocks": ["10.20.0.0/16"]}
        return c.Resource(type=c.SECURITY_GROUP, name="n1-sg", props={"ingress": [rule]})

    assert c.ingress_build_port_only(sg(9464), s) == []
    assert c.ingress_build_port_only(sg(9464), Settings()) == [
        "security group n1-sg ingress[0]: opens TCP 9464-9464; only 1234 (the build port) may be open"]
    assert "only 1234 (the build port) and 9464 (metrics.port) may be open" in \
        c.ingress_build_port_only(sg(6060), s)[0]
    toml = render_buildkitd_toml(platform="linux/amd64", port=1234, volume_gb=20, debug_socket=True)
    assert toml_tls_problems(toml) == []
    tcp = toml.replace("unix:///run/buildkit/debug.sock", "tcp://127.0.0.1:6060")
    assert "debugAddress 'tcp://127.0.0.1:6060', which serves pprof" in toml_tls_problems(tcp)[0]
    # the whole rendered SSH payload with metrics on, as the pack reads the remote command
    cfg = parse_config({**SSH, "metrics": {"port": 9464}})
    cert = "-----BEGIN CERTIFICATE-----\nY2VydA==\n-----END CERTIFICATE-----\n"
    key = "-----BEGIN " + "EC PRIVATE KEY-----\nbm90IGEga2V5\n-----END " + "EC PRIVATE KEY-----\n"
    command = c.Resource(type=c.REMOTE_COMMAND, name="n1-buildkitd", props={
        "create": render(cfg, cfg.nodes[0], cert_source="stdin").payload(),
        "stdin": render_cert_bundle(cert, cert, key)})
    assert nodes_serve_mtls(command, s) == []


# ------------------------------------------------------------------ the proxy's pure parts

def test_gc_limit_is_read_from_the_rendered_toml() -> None:
    toml = render_buildkitd_toml(platform="linux/amd64", port=1234, volume_gb=20)
    assert mp.gc_max_used_bytes(toml) == 16 * 2**30  # 80% of 20 GiB, binary units as buildkitd reads them
    assert mp.gc_max_used_bytes("root = '/x'\n") is None


def test_history_events_give_builds_running_and_the_last_success() -> None:
    # `buildctl debug histories --format '{{json .}}'` as v0.32.2 prints it (trimmed): STARTED has no "type"
    lines = [
        '{"record":{"Ref":"run1","CreatedAt":{"seconds":1796320990}}}',
        '{"type":1,"record":{"Ref":"bad","error":{"code":2,"message":"x"},'
        '"CreatedAt":{"seconds":1796320970},"CompletedAt":{"seconds":1796320999,"nanos":810322047}}}',
        '{"type":1,"record":{"Ref":"ok","CreatedAt":{"seconds":1796320970},'
        '"CompletedAt":{"seconds":1796320970,"nanos":706400187}}}',
        "",
    ]
    running, last_ok = mp.history_figures(lines)
    assert running == 1 and last_ok == pytest.approx(1796320970.706400187)
    assert mp.history_figures([]) == (0, None)


def test_farm_series_are_prometheus_text_and_unknowns_are_left_out() -> None:
    text = mp.render_series({"bkf_daemon_up": 1, "bkf_builds_running": 0, "bkf_gc_max_used_bytes": 16 * 2**30,
                             "bkf_tls_cert_not_after_timestamp_seconds": {"server": 1.8e9, "ca": None},
                             "bkf_last_successful_build_timestamp_seconds": None})
    fams = families(text)
    assert set(fams) == {"bkf_daemon_up", "bkf_builds_running", "bkf_gc_max_used_bytes",
                         "bkf_tls_cert_not_after_timestamp_seconds"}
    [sample] = fams["bkf_tls_cert_not_after_timestamp_seconds"].samples
    assert sample.labels == {"cert": "server"} and sample.value == 1.8e9


# ------------------------------------------------------------------ the proxy, running

class _Debug(http.server.BaseHTTPRequestHandler):
    """buildkitd's debug handlers, as far as the proxy may ever see them."""

    def do_GET(self) -> None:
        body = {"/metrics": b"# TYPE buildkit_builds_total counter\nbuildkit_builds_total{status=\"success\"} 3\n",
                "/debug/pprof/": b"pprof index"}.get(self.path, b"404")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _UnixServer(http.server.HTTPServer):
    address_family = socket.AF_UNIX

    def server_bind(self) -> None:
        self.socket.bind(self.server_address)
        self.server_name, self.server_port = "debug", 0


def start_proxy(d: Path) -> tuple[int, subprocess.Popen[str]]:
    """The shipped proxy (d/bkf-metrics.py) on a free loopback port of d's TLS dir, debug socket and
    config, once it accepts connections (or after 10 s: the caller's assertions say what failed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(d / "bkf-metrics.py"), "--listen", "127.0.0.1", "--port", str(port), "--tls-dir",
         str(d / "tls"), "--debug-socket", str(d / "debug.sock"), "--socket", str(d / "none.sock"),
         "--buildctl", "false", "--config", str(d / "buildkitd.toml"), "--state-dir", str(d / "state")],
        stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    return port, proc


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, Pem, Path]]:
    d = tmp_path_factory.mktemp("metrics")
    ca, servers, clients = openssl_pki(d / "pki", {"node": ["IP:127.0.0.1"]})
    tls = d / "tls"
    tls.mkdir()
    for name, src in (("ca.pem", ca), ("cert.pem", servers["node"].cert), ("key.pem", servers["node"].key)):
        (tls / name).write_bytes(src.read_bytes())
    (d / "state").mkdir()
    (d / "buildkitd.toml").write_text(render_buildkitd_toml(platform="linux/amd64", port=1234, volume_gb=20))
    debug = _UnixServer(str(d / "debug.sock"), _Debug)  # type: ignore[arg-type]  # (a unix path)
    threading.Thread(target=debug.serve_forever, daemon=True).start()
    # the code as nodes get it (shipped_metrics_proxy), not the module: what runs there is tested
    (d / "bkf-metrics.py").write_text(shipped_metrics_proxy())
    port, proc = start_proxy(d)
    try:
        yield port, ca, clients["ci"], d
    finally:
        proc.terminate()
        proc.wait(10)
        debug.shutdown()


def get(port: int, ca: Path, client: Pem | None, path: str = "/metrics", method: str = "GET") -> tuple[int, str]:
    return https_get("127.0.0.1", port, ca, client, path, method, timeout=10)


def test_proxy_serves_buildkit_and_farm_series_to_a_client_of_the_ca(proxy: tuple[int, Path, Pem, Path]) -> None:
    port, ca, client, _ = proxy
    code, body = get(port, ca, client)
    assert code == 200
    fams = families(body)
    assert fams["buildkit_builds"].samples[0].value == 3  # (the parser drops _total from a counter's name)
    assert fams["bkf_daemon_up"].samples[0].value == 1
    assert fams["bkf_gc_max_used_bytes"].samples[0].value == 16 * 2**30
    expiry = {s.labels["cert"]: s.value for s in fams["bkf_tls_cert_not_after_timestamp_seconds"].samples}
    assert set(expiry) == {"server", "ca"} and all(0 < v - time.time() < 3 * 86400 for v in expiry.values())
    assert fams["bkf_state_volume_size_bytes"].samples[0].value > 0
    assert "bkf_builds_running" not in fams  # buildctl failed: left out, not a made-up 0


def test_proxy_forwards_nothing_but_get_metrics(proxy: tuple[int, Path, Pem, Path]) -> None:
    port, ca, client, _ = proxy
    code, body = get(port, ca, client, "/debug/pprof/")
    assert code == 404 and "pprof" not in body.replace("only /metrics", "")
    assert get(port, ca, client, method="POST")[0] == 405
    assert get(port, ca, client, "/debug/cache/load", method="POST")[0] == 405


def test_proxy_refuses_clients_without_a_cert_of_the_ca(proxy: tuple[int, Path, Pem, Path],
                                                        tmp_path: Path) -> None:
    port, ca, _, _ = proxy
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(port, ca, None)
    _, _, other = openssl_pki(tmp_path, {}, ca_name="rogue")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        get(port, ca, other["ci"])


def test_proxy_exits_cleanly_on_sigterm(proxy: tuple[int, Path, Pem, Path]) -> None:
    """As PID 1 of a container (the Kubernetes sidecar) SIGTERM's default action is ignored: the
    proxy handles it, so here it exits 0 instead of being killed by the signal (-15)."""
    _, _, _, d = proxy
    _, proc = start_proxy(d)
    try:
        proc.terminate()
        assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        proc.wait()
