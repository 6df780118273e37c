"""metrics.port on a real node: the same payload as the program sends, a real buildkitd, real scrapes.

One test host (h20) runs the payload with the metrics endpoint on; the scrapes go from this machine
over the test bridge, as Prometheus would from allowedCidrs. Tests run in file order: the node is
installed with metrics on, scraped, refused, then turned off and uninstalled.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from components.node.buildkitd_toml import render_buildkitd_toml
from components.node.payload import render_cert_bundle, render_payload, sha256_file
from components.node.settings import NodeSettings
from harness.hosts import Host, HostSet, Pem, buildctl, https_get, make_artifact, need, openssl_pki, running_hosts
from tests.unit.test_prometheus_examples import alert_metric_names

pytestmark = pytest.mark.daemons

HOST = "h20"
PORT, METRICS_PORT = 1234, 9464


@dataclass
class Node:
    hosts: HostSet
    dir: Path
    ca: Path
    server: Pem
    client: Pem
    artifact: Path

    @property
    def host(self) -> Host:
        return self.hosts.host(HOST)

    def install(self, metrics_port: int) -> str:
        settings = NodeSettings(
            node_name="amd64-1", platform="linux/amd64", buildkit_version="v0.32.2",
            buildkit_sha256=sha256_file(self.artifact), port=PORT, cert_source="stdin",
            artifact=f"/opt/buildkit-farm/artifacts/{self.artifact.name}",
            data_device=f"/run/bkf-testhosts/{HOST}/data-device", metrics_port=metrics_port)
        toml = render_buildkitd_toml(platform="linux/amd64", port=PORT, volume_gb=20, debug_socket=metrics_port > 0)
        bundle = render_cert_bundle(self.ca.read_text(), self.server.cert.read_text(), self.server.key.read_text())
        return self.hosts.install(self.host, self.artifact, render_payload(settings, toml), bundle)

    def buildctl(self, *args: str, check: bool = True) -> Any:
        return buildctl(f"tcp://{self.host.addr}:{PORT}", self.host.addr, self.ca, self.client, *args, check=check)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    need("buildkitd", "buildctl", "openssl", "ssh")
    d = tmp_path_factory.mktemp("metrics")
    with running_hosts([HOST], d / "state") as hs:
        addr = hs.host(HOST).addr
        ca, servers, clients = openssl_pki(d / "pki", {HOST: [f"IP:{addr}"]})
        yield Node(hs, d, ca, servers[HOST], clients["ci"], make_artifact(d / "artifacts"))


def scrape(node: Node, client: Pem | None, path: str = "/metrics", method: str = "GET") -> tuple[int, str]:
    return https_get(node.host.addr, METRICS_PORT, node.ca, client, path, method)


def wait_for_port(node: Node) -> None:
    for _ in range(100):
        try:
            socket.create_connection((node.host.addr, METRICS_PORT), timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"nothing listens on {node.host.addr}:{METRICS_PORT}")


def context(d: Path, dockerfile: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "a").write_text("hello\n")
    (d / "Dockerfile").write_text(dockerfile)
    return d


def test_node_with_metrics_on_starts_the_endpoint(node: Node) -> None:
    log = node.install(METRICS_PORT)
    assert "buildkitd is up" in log, log
    wait_for_port(node)


def test_a_client_of_the_ca_scrapes_buildkit_and_farm_series(node: Node) -> None:
    ok = context(node.dir / "ok", "FROM scratch\nCOPY a /a\n")
    bad = context(node.dir / "bad", "FROM scratch\nCOPY missing /a\n")
    node.buildctl("build", "--frontend", "dockerfile.v0", "--local", f"context={ok}", "--local", f"dockerfile={ok}")
    r = node.buildctl("build", "--frontend", "dockerfile.v0", "--local", f"context={bad}",
                      "--local", f"dockerfile={bad}", check=False)
    assert r.returncode != 0
    started = time.time()
    code, body = scrape(node, node.client)
    print(f"\nscrape over mTLS: {time.time() - started:.2f} s, {len(body)} bytes")
    assert code == 200, body
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    # buildkitd's own series, as v0.32.2 serves them (counters lose _total in the parser's family names)
    builds = {s.labels["status"]: s.value for s in fams["buildkit_builds"].samples}
    assert builds == {"success": 1, "failure": 1}, builds
    assert {s.labels["kind"] for s in fams["buildkit_builds_steps"].samples} >= {"cached", "completed", "total"}
    assert "buildkit_build_duration_seconds" in fams and "process_resident_memory_bytes" in fams
    # the farm's
    assert fams["bkf_daemon_up"].samples[0].value == 1
    assert fams["bkf_builds_running"].samples[0].value == 0
    assert 0 < time.time() - fams["bkf_last_successful_build_timestamp_seconds"].samples[0].value < 600
    assert fams["bkf_gc_max_used_bytes"].samples[0].value == 16 * 2**30
    used, size = (fams[f"bkf_state_volume_{k}_bytes"].samples[0].value for k in ("used", "size"))
    assert 0 < used < size and 15 * 2**30 < size < 21 * 2**30  # the host's 20 GiB loop volume
    expiry = {s.labels["cert"]: s.value for s in fams["bkf_tls_cert_not_after_timestamp_seconds"].samples}
    assert set(expiry) == {"server", "ca"} and all(0 < v - time.time() < 3 * 86400 for v in expiry.values())
    # every series the example alert rules read is in this real scrape
    samples = {s.name for f in fams.values() for s in f.samples}
    assert alert_metric_names() <= samples, alert_metric_names() - samples
    print("".join(line + "\n" for line in body.splitlines() if line.startswith(("bkf_", "buildkit_builds"))))


def test_no_cert_or_another_cas_cert_is_refused(node: Node, tmp_path: Path) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        scrape(node, None)
    _, _, other = openssl_pki(tmp_path, {}, ca_name="rogue")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        scrape(node, other["ci"])
    # plain HTTP gets no answer from buildkitd either
    with socket.create_connection((node.host.addr, METRICS_PORT), timeout=30) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            assert b"buildkit_" not in s.recv(65536)
        except ConnectionError:
            pass


def test_only_get_metrics_is_forwarded_and_the_debug_handlers_are_a_root_only_socket(node: Node) -> None:
    assert scrape(node, node.client, "/debug/pprof/")[0] == 404
    assert scrape(node, node.client, "/debug/cache/load", "POST")[0] == 405
    assert scrape(node, node.client, "/debug/gc")[0] == 404
    out = node.hosts.ssh(node.host, "stat -c '%a %U %F' /run/buildkit/debug.sock; ss -ltnH").stdout.splitlines()
    assert out[0] == "660 root socket", out
    # the host's TCP listeners: sshd, the build port, the metrics port; no debug port on any address
    ports = sorted({int(line.split()[3].rsplit(":", 1)[1]) for line in out[1:] if line.strip()})
    assert ports == [22, PORT, METRICS_PORT], out


def test_metrics_off_closes_the_port_and_removes_the_socket(node: Node) -> None:
    log = node.install(0)
    assert "restarting buildkitd" in log, log
    with pytest.raises(OSError):
        socket.create_connection((node.host.addr, METRICS_PORT), timeout=5).close()
    left = node.hosts.ssh(node.host, "ls /run/buildkit; grep -c '^ *debugAddress' /etc/buildkit/buildkitd.toml",
                          check=False).stdout
    assert "debug.sock" not in left and left.strip().endswith("0"), left
    assert not [p for p in node.hosts.processes(node.host) if "bkf-metrics" in p]
    # and on again, then uninstall: nothing of it stays running
    node.install(METRICS_PORT)
    wait_for_port(node)
    node.hosts.ssh(node.host, "/opt/buildkit-farm/bkf-node.sh uninstall")
    procs = node.hosts.processes(node.host)
    assert not [p for p in procs if "bkf-metrics" in p or "buildkitd" in p], procs
