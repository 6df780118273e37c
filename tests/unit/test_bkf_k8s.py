"""`bkf status` and `bkf wake` on Kubernetes (idleStop): against a stand-in API server (stdlib HTTPS, a
CA of its own) that answers the `scale` subresource as the real one does for the CI token (RBAC: get
and patch of the farm's StatefulSets only), and a stand-in buildctl whose node answers while its
StatefulSet is at 1. tests/k8s/test_scale_to_zero.py runs the same commands against the real cluster."""

from __future__ import annotations

import json
import re
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bkf import k8s
from bkf.app import app
from bkf.errors import UserError
from components import status
from components.builder.scripts import render_create_script
from components.builder.wake import KubernetesWake
from tests.support.pki import make_ca, make_server
from tests.unit.test_cli import KEY, NODES
from tests.unit.test_status import DU, HIST, INFO, WORKERS

NS = "farm"
TOKEN = "ci-wake-token-s3cret"
WAKE = KubernetesWake(NS, {"amd64-1": "amd64-1", "arm64-1": "arm64-1", "amd64-2": "amd64-2"})
SCALE = re.compile(rf"^/apis/apps/v1/namespaces/{NS}/statefulsets/(?P<name>[^/]+)/scale$")


class FakeApi:
    """The scale subresource of a namespace's StatefulSets; replicas in <dir>/<name> (so the stand-in
    buildctl reads them too), each request in `calls` as (method, name, body)."""

    def __init__(self, d: Path, replicas: dict[str, int], allowed: set[str]) -> None:
        self.dir, self.allowed = d, allowed
        d.mkdir()
        for n, r in replicas.items():
            (d / n).write_text(str(r))
        self.calls: list[tuple[str, str, Any]] = []
        self.ca = make_ca("fake kube-apiserver CA")
        server = make_server(self.ca, ["127.0.0.1"])
        (d / "tls.crt").write_text(server.cert_pem)
        (d / "tls.key").write_text(server.key_pem)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(d / "tls.crt", d / "tls.key")
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, code: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def handle_one(self, verb: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n)) if n else None
                m = SCALE.match(self.path)
                name = m["name"] if m else self.path
                api.calls.append((self.command, name, body))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.answer(401, {"kind": "Status", "message": "Unauthorized", "code": 401})
                    return
                if m is None or name not in api.allowed:
                    self.answer(403, {"kind": "Status", "code": 403, "message": (
                        f'statefulsets.apps "{name}" is forbidden: User "system:serviceaccount:{NS}:bkf-ci-wake" '
                        f'cannot {verb} resource "statefulsets/scale" in API group "apps" in the namespace "{NS}"')})
                    return
                if body is not None:
                    (api.dir / name).write_text(str(body["spec"]["replicas"]))
                r = int((api.dir / name).read_text())
                # as the API server: spec.replicas is omitted at 0; the pods follow at once here
                self.answer(200, {"kind": "Scale", "spec": {"replicas": r} if r else {},
                                  "status": {"replicas": r, "selector": f"app={name}"}})

            def do_GET(self) -> None:
                self.handle_one("get")

            def do_PATCH(self) -> None:
                self.handle_one("patch")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def replicas(self) -> dict[str, int]:
        return {n: int((self.dir / n).read_text()) for n in WAKE.statefulsets}

    def patches(self) -> list[tuple[str, Any]]:
        return [(name, body) for method, name, body in self.calls if method == "PATCH"]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeApi, Path]]:
    """The API server with amd64-1 at 1, arm64-1 and amd64-2 at 0, and an outputs file of a Kubernetes
    stack with idleStop; $BKF_K8S_API set, the token and CA from the outputs."""
    api = FakeApi(tmp_path / "scale", {"amd64-1": 1, "arm64-1": 0, "amd64-2": 0}, set(WAKE.statefulsets))
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for f, v in (("info.json", INFO), ("workers.json", WORKERS), ("du.json", DU)):
        (tmp_path / f).write_text(json.dumps(v))
    (tmp_path / "hist.jsonl").write_text("".join(json.dumps(h) + "\n" for h in HIST))
    # a node answers while its StatefulSet is at 1, unless <tmp>/dead.<node> says its daemon fails
    (bin_ / "buildctl").write_text(f"""#!/bin/bash
case $2 in {" ".join(f"{n.endpoint}) n={n.name};;" for n in NODES)} *) n=none;; esac
if [ "$n" = none ] || [ "$(cat {api.dir}/$n)" != 1 ] || [ -e {tmp_path}/dead.$n ]; then
  echo "dial tcp ${{2#tcp://}}: connect: connection refused" >&2; exit 1
fi
case "$*" in
  *"debug info"*) cat {tmp_path}/info.json;;
  *"debug workers"*) cat {tmp_path}/workers.json;;
  *" du "*) cat {tmp_path}/du.json;;
  *"debug histories"*) cat {tmp_path}/hist.jsonl;;
esac
""")
    (bin_ / "buildctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}:/usr/bin:/bin")
    monkeypatch.setattr(status, "served_cert_expiry", lambda *a: "2027-01-01T00:00:00Z")
    for name in ("BKF_K8S_TOKEN", "BKF_K8S_CA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BKF_K8S_API", api.url)
    out = tmp_path / "outputs.json"
    out.write_text(json.dumps({
        "nodes": [{"name": n.name, "platform": n.platform, "endpoint": n.endpoint, "serverName": n.server_name}
                  for n in NODES],
        "caCert": "CA", "clientCert": "CERT", "clientKey": KEY,
        "buildxCreateScript": render_create_script("bkf", NODES, wake=WAKE),
        "ciWakeToken": TOKEN, "ciWakeCaCert": api.ca.cert_pem}))
    try:
        yield api, out
    finally:
        api.httpd.shutdown()
        api.httpd.server_close()


def bkf(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_status_a_node_at_zero_is_stopped_and_one_at_one_not_answering_is_waking(
        world: tuple[FakeApi, Path], tmp_path: Path) -> None:
    api, out = world
    (tmp_path / "scale" / "arm64-1").write_text("1")
    (tmp_path / "dead.arm64-1").touch()  # at 1, its daemon not up yet
    r = bkf("status", "--outputs", str(out), "--json")
    assert r.exit_code == 0, r.output
    assert [(n["name"], n["state"], n["reachable"]) for n in json.loads(r.stdout)] == [
        ("amd64-1", "up", True), ("arm64-1", "waking", False), ("amd64-2", "stopped", False)]
    # only the silent nodes' scale is read, with the token from the outputs; nothing is patched
    assert sorted(c[:2] for c in api.calls) == [("GET", "amd64-2"), ("GET", "arm64-1")]
    table = bkf("status", "--outputs", str(out)).stdout
    assert [line.split()[:3] for line in table.splitlines()[1:4]] == [
        ["amd64-1", "linux/amd64", "up"], ["arm64-1", "linux/arm64", "waking"], ["amd64-2", "linux/amd64", "stopped"]]


def test_status_without_the_api_url_reports_a_node_at_zero_down(
        world: tuple[FakeApi, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    api, out = world
    monkeypatch.delenv("BKF_K8S_API")
    r = bkf("status", "--outputs", str(out), "--json")
    assert r.exit_code == 1, r.output
    assert [n["state"] for n in json.loads(r.stdout)] == ["up", "down", "down"]
    assert r.stderr.splitlines() == ["bkf: cannot tell a stopped node from a down one: the Kubernetes API server "
                                     "is unknown: set BKF_K8S_API to its URL as you reach it "
                                     "(e.g. https://203.0.113.10:6443)"]
    assert api.calls == []


def test_wake_scales_exactly_the_named_nodes_at_zero_and_waits_for_mtls(world: tuple[FakeApi, Path]) -> None:
    api, out = world
    r = bkf("wake", "amd64-2", "--outputs", str(out))
    assert r.exit_code == 0, r.output
    assert api.patches() == [("amd64-2", {"spec": {"replicas": 1}})]
    assert api.replicas() == {"amd64-1": 1, "arm64-1": 0, "amd64-2": 1}
    # the same, read back over HTTPS by the module's own reader
    read = k8s.scales(k8s.api_from(json.loads(out.read_text())), WAKE, ["amd64-1", "arm64-1", "amd64-2"])
    assert {n: s.spec for n, s in read.items()} == {"amd64-1": 1, "arm64-1": 0, "amd64-2": 1}
    lines = r.stdout.splitlines()
    assert lines[:3] == ["amd64-2: scaled to 0", f"amd64-2: scaled statefulset {NS}/amd64-2 to 1",
                         "amd64-2: pod created after 0 s, waiting for mTLS"], lines
    assert re.fullmatch(r"amd64-2: answers mTLS \d+ s after its scale to 1", lines[3]), lines
    # every node: the one still at 0 is scaled, the ones at 1 are left alone
    r = bkf("wake", "--outputs", str(out))
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[:3] == ["amd64-1: 1 replica", "arm64-1: scaled to 0", "amd64-2: 1 replica"]
    assert [p[0] for p in api.patches()] == ["amd64-2", "arm64-1"]
    assert api.replicas() == {"amd64-1": 1, "arm64-1": 1, "amd64-2": 1}
    r = bkf("wake", "--outputs", str(out))
    assert r.exit_code == 0 and r.stdout.splitlines()[-1] == "nothing stopped", r.output
    assert len(api.patches()) == 2


def test_wake_exits_node_down_when_the_woken_node_does_not_answer(world: tuple[FakeApi, Path],
                                                                  tmp_path: Path) -> None:
    api, out = world
    (tmp_path / "dead.amd64-2").touch()
    r = bkf("wake", "amd64-2", "--outputs", str(out), "--timeout", "1")
    assert r.exit_code == 1, r.output
    assert r.stderr.splitlines() == ["bkf: amd64-2 did not answer within 1 s"]
    assert api.replicas()["amd64-2"] == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("case", ["wrong token", "forbidden", "refused", "other CA", "not a PEM", "no URL",
                                  "http URL"])
def test_every_api_problem_is_one_line_without_the_token(world: tuple[FakeApi, Path], case: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    api, out = world
    wrong = "wrong-token-also-s3cret"
    expect = {"wrong token": "HTTP 401: Unauthorized (the token is not valid for this API server",
              "forbidden": 'HTTP 403: statefulsets.apps "amd64-2" is forbidden: User '
                           f'"system:serviceaccount:{NS}:bkf-ci-wake" cannot get',
              "refused": "no answer from https://127.0.0.1:",
              "other CA": "CERTIFICATE_VERIFY_FAILED",
              "not a PEM": "the cluster CA (BKF_K8S_CA or ciWakeCaCert) is not a PEM certificate",
              "no URL": "the Kubernetes API server is unknown: set BKF_K8S_API",
              "http URL": "BKF_K8S_API must be an https:// URL"}[case]
    if case == "wrong token":
        monkeypatch.setenv("BKF_K8S_TOKEN", wrong)
    elif case == "forbidden":
        api.allowed.discard("amd64-2")
    elif case == "refused":
        monkeypatch.setenv("BKF_K8S_API", f"https://127.0.0.1:{free_port()}")
    elif case == "other CA":
        monkeypatch.setenv("BKF_K8S_CA", make_ca("another CA").cert_pem)
    elif case == "not a PEM":
        monkeypatch.setenv("BKF_K8S_CA", "not a certificate")
    elif case == "no URL":
        monkeypatch.delenv("BKF_K8S_API")
    else:
        monkeypatch.setenv("BKF_K8S_API", api.url.replace("https://", "http://"))
    r = bkf("wake", "amd64-2", "--outputs", str(out))
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bkf: ") and expect in lines[0], lines
    assert TOKEN not in r.output and wrong not in r.output
    assert api.patches() == [] and api.replicas()["amd64-2"] == 0


def test_the_credentials_come_from_the_environment_first_then_the_outputs() -> None:
    outputs = {"ciWakeToken": "from-outputs", "ciWakeCaCert": "CA-OUTPUTS"}
    env = {"BKF_K8S_API": "https://api:6443/"}
    assert k8s.api_from(outputs, env) == k8s.Api("https://api:6443", "from-outputs", "CA-OUTPUTS")
    both = {**env, "BKF_K8S_TOKEN": "from-env\n", "BKF_K8S_CA": "CA-ENV"}
    api = k8s.api_from(outputs, both)
    assert (api.token, api.ca) == ("from-env", "CA-ENV")  # a token file's newline is dropped
    assert "from-env" not in repr(api)
    assert k8s.api_from({"ciWakeToken": "t"}, env).ca is None  # the system's trust store
    with pytest.raises(UserError, match="no token for the Kubernetes API"):
        k8s.api_from({}, env)
    with pytest.raises(UserError, match="spaces or control characters") as e:
        k8s.api_from({"ciWakeToken": "two\nlines"}, env)
    assert "two" not in str(e.value)


def test_a_scale_in_the_words_status_reads() -> None:
    assert k8s.parse_scale({"spec": {}, "status": {"replicas": 0}}) == k8s.Scale(0, 0)
    assert k8s.parse_scale({"spec": {"replicas": 1}, "status": {}}) == k8s.Scale(1, 0)
    assert [k8s.condition(k8s.Scale(*s)) for s in ((0, 0), (0, 1), (1, 0), (1, 1))] == [
        "stopped", "stopping", "pending", "pending"]
    assert {status.STOPPED_ON_PURPOSE[k8s.condition(k8s.Scale(*s))] for s in ((0, 0), (0, 1))} == {"stopped"}
    assert status.STOPPED_ON_PURPOSE[k8s.condition(k8s.Scale(1, 1))] == "waking"
