"""otel.endpoint and otel.headers on a real node: buildkitd exports a build's spans to a real OTLP
receiver, with the configured headers on every request.

One test host (h21) runs the payload with otel.endpoint set to a small gRPC receiver on this
machine's end of the test bridge (tests/support/otlp.py, the OpenTelemetry protobufs from PyPI).
The headers come as the SSH backend sends them: in the certificate bundle on stdin (rendered by
components/node/render.py), never in the payload or a command line.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from components.config import parse_config
from components.node.buildkitd_toml import render_buildkitd_toml
from components.node.payload import render_cert_bundle, render_payload, sha256_file
from components.node.render import otlp_headers
from components.node.settings import NodeSettings
from harness.hosts import buildctl, make_artifact, need, openssl_pki, running_hosts
from tests.support.otlp import Span, otlp_receiver

pytestmark = pytest.mark.daemons

HOST = "h21"
#: this machine on the test bridge (local/testhosts.sh): what a test host reaches
BRIDGE_ADDR = "10.77.0.1"
#: a value with the characters the variable's format must encode (',' and '=' separate its pairs)
TOKEN = "Bearer s3cr3t,t0k3n=="
HEADERS = {"authorization": TOKEN, "x-team": "builds"}


def test_a_build_on_a_node_with_otel_endpoint_arrives_as_spans(tmp_path: Path) -> None:
    need("buildkitd", "buildctl", "openssl", "ssh")
    with running_hosts([HOST], tmp_path / "state") as hs, otlp_receiver(BRIDGE_ADDR) as (port, received):
        host = hs.host(HOST)
        ca, servers, clients = openssl_pki(tmp_path / "pki", {HOST: [f"IP:{host.addr}"]})
        artifact = make_artifact(tmp_path / "artifacts")
        settings = NodeSettings(
            node_name="amd64-1", platform="linux/amd64", buildkit_version="v0.32.2",
            buildkit_sha256=sha256_file(artifact), port=1234, cert_source="stdin",
            artifact=f"/opt/buildkit-farm/artifacts/{artifact.name}",
            data_device=f"/run/bkf-testhosts/{HOST}/data-device",
            otel_endpoint=f"http://{BRIDGE_ADDR}:{port}", otel_headers=True)
        cfg = parse_config({"backend": "ssh", "nodes": [{"name": "amd64-1", "platform": "linux/amd64",
                                                          "host": host.addr}], "ssh": {"privateKeyPath": "k"},
                            "otel": {"endpoint": settings.otel_endpoint, "headers": HEADERS}})
        bundle = render_cert_bundle(ca.read_text(), servers[HOST].cert.read_text(), servers[HOST].key.read_text(),
                                    otlp_headers(cfg))
        payload = render_payload(settings, render_buildkitd_toml(platform="linux/amd64", port=1234, volume_gb=20))
        assert "s3cr3t" not in payload
        log = hs.install(host, artifact, payload, bundle)
        assert "buildkitd is up" in log, log
        assert "s3cr3t" not in log
        # in the daemon's environment, on no command line of the host
        assert not [c for c in hs.processes(host) if "s3cr3t" in c]
        ctx = tmp_path / "ctx"
        ctx.mkdir()
        (ctx / "a").write_text("hello\n")
        (ctx / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")
        started = time.monotonic()
        buildctl(f"tcp://{host.addr}:1234", host.addr, ca, clients["ci"], "build", "--frontend", "dockerfile.v0",
                 "--local", f"context={ctx}", "--local", f"dockerfile={ctx}")

        def daemon(spans: list[Span]) -> list[Span]:
            return [s for s in spans if s.resource.get("service.name") == "buildkitd"]

        def has_the_build(spans: list[Span]) -> bool:
            return any(s.name.endswith("Control/Solve") for s in daemon(spans))

        spans = received.wait_for(has_the_build, timeout_s=90)
        ours = daemon(spans)
        print(f"\n{len(spans)} spans ({len(ours)} from buildkitd, the rest buildctl's, relayed by the daemon) "
              f"within {time.monotonic() - started:.1f} s of the build's start; buildkitd's: "
              f"{sorted({s.name for s in ours})[:15]}; metric exports so far: {received.metric_exports}")
        assert has_the_build(spans), sorted({(s.resource.get("service.name"), s.name) for s in spans})
        solve = next(s for s in ours if s.name.endswith("Control/Solve"))
        assert solve.resource.get("bkf.node") == "amd64-1" and solve.resource.get("bkf.platform") == "linux/amd64"
        # the build's own steps are spans too, not only the gRPC call
        assert any("COPY" in s.name for s in ours), sorted({s.name for s in ours})
        # every export carried the configured headers, decoded back to the exact values
        with received.lock:
            metadata = list(received.trace_metadata)
        print(f"{len(metadata)} trace exports, each with metadata keys {sorted({k for m in metadata for k in m})}")
        assert metadata and all(m.get("authorization") == TOKEN and m.get("x-team") == "builds" for m in metadata), \
            [{k: v for k, v in m.items() if k != "authorization"} for m in metadata]
        hs.ssh(host, "/opt/buildkit-farm/bkf-node.sh uninstall")
