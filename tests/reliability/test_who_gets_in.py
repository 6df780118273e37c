"""Who gets in: every bad client is refused by every node of the two-node farm, a node without its TLS
files never starts (never plaintext), insecure entitlements are denied, and RUN steps reach neither
the daemon's port, the host's sshd nor the metadata address (with positive controls).

The cert checks run with two clients: buildctl (Go: it withholds a cert the server's CA list does
not name, and never offers a P-224 key) and curl (OpenSSL: it sends whatever cert it is given, so
the server's own check is what refuses). A refusal counts only when the good client, same tool,
same node, is served (the positive control).
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from harness.hosts import need, run
from tests.reliability import figures
from tests.reliability.conftest import METADATA_HOST, NODES
from tests.reliability.farm import PORT, Client, Farm, write_client
from tests.support import pki

pytestmark = pytest.mark.reliability

#: the daemon's refusals as the clients report them
ALERT = re.compile(r"alert (unknown ca|certificate expired|bad certificate|certificate required)"
                   r"|tls: (certificate required|expired certificate|bad certificate|unknown certificate authority)"
                   r"|broken pipe|connection reset|error reading server preface: EOF"
                   # curl, when the server closes right after its alert (the alert is lost in the race), or
                   # reports a TLS 1.2 "certificate expired" alert as a verification failure (the good
                   # client's TLS 1.2 control with the same --cacert passes, so it is not the server's cert)
                   r"|getpeername\(\) failed|SSL certificate verification failed",
                   # (curl says "Connection reset by peer", Go "connection reset by peer": the same reset)
                   re.IGNORECASE)


@pytest.fixture(scope="module")
def bad(farm: Farm) -> dict[str, Client]:
    d = farm.dir / "bad-clients"
    ca = farm.ca.cert_pem
    return {
        "cert from another CA": write_client(d, "foreign", ca, pki.make_client(pki.make_ca("rogue CA"))),
        "expired client cert": write_client(d, "expired", ca, pki.make_client(farm.ca, expired=True)),
        "client cert without clientAuth": write_client(d, "noclientauth", ca,
                                                       pki.make_client(farm.ca, client_auth=False)),
    }


def curl_grpc(farm: Farm, host: str, client: Client | None, *tls: str) -> subprocess.CompletedProcess[str]:
    """One real gRPC call (Control/ListWorkers, an empty request) through OpenSSL; grpc-status 0 = served."""
    frame = farm.dir / "empty.grpc"
    frame.write_bytes(b"\0\0\0\0\0")  # uncompressed, zero-length protobuf message
    argv = [need("curl")["curl"], "-sS", "--http2", "--max-time", "30", "-o", "/dev/null", "-D", "-",
            "-X", "POST", "-H", "content-type: application/grpc", "-H", "te: trailers",
            "--data-binary", f"@{frame}", "--cacert", str(farm.client.ca), *tls]
    if client:
        argv += ["--cert", str(client.cert), "--key", str(client.key)]
    return run([*argv, f"https://{farm.host(host).addr}:{PORT}/moby.buildkit.v1.Control/ListWorkers"],
               check=False, timeout=60)


def served(r: subprocess.CompletedProcess[str]) -> bool:
    return r.returncode == 0 and "grpc-status: 0" in r.stdout


def test_the_good_client_is_served_by_every_node(farm: Farm) -> None:
    """The positive control of every refusal below."""
    for host in NODES:
        assert farm.buildctl(host, "debug", "workers").stdout.count("linux/amd64") >= 1
        assert served(curl_grpc(farm, host, farm.client)), host
        assert served(curl_grpc(farm, host, farm.client, "--tlsv1.2", "--tls-max", "1.2")), host


def test_every_bad_client_is_refused_by_every_node(farm: Farm, bad: dict[str, Client]) -> None:
    refused: dict[str, int] = {}
    attempts: dict[str, int] = {}
    detail: list[str] = []

    def check(name: str, r: subprocess.CompletedProcess[str], pattern: re.Pattern[str] | str = ALERT) -> None:
        ok = r.returncode != 0 and "grpc-status: 0" not in r.stdout and re.search(pattern, r.stderr) is not None
        refused[name] = refused.get(name, 0) + ok
        attempts[name] = attempts.get(name, 0) + 1
        if not ok:
            detail.append(f"{name}: NOT refused as expected (rc {r.returncode}): {r.stdout[-300:]} {r.stderr[-500:]}")

    for host in NODES:
        nocert = Client(farm.client.ca, farm.client.cert, farm.client.key)
        # no client cert (buildctl: CA only; curl: no --cert)
        argv = [need("buildctl")["buildctl"], "--addr", farm.endpoint(host), "--tlsservername",
                farm.host(host).addr, "--tlscacert", str(nocert.ca), "debug", "workers"]
        check("no client cert", run(argv, check=False, timeout=60))
        check("no client cert", curl_grpc(farm, host, None))
        for name, c in bad.items():
            check(name, farm.buildctl(host, "debug", "workers", client=c, check=False, timeout=60))
            for tls in (("--tlsv1.3",), ("--tlsv1.2", "--tls-max", "1.2")):
                check(name, curl_grpc(farm, host, c, *tls))
        # the right CA and client, a server name the server cert does not carry: the client refuses
        check("server name not in the SANs",
              farm.buildctl(host, "debug", "workers", server_name="wrong.example", check=False, timeout=60),
              "x509: certificate is not valid for any names, but wanted to match wrong.example")
        # plaintext gRPC to the TLS port
        check("plaintext gRPC", run([need("buildctl")["buildctl"], "--addr", farm.endpoint(host), "debug", "workers"],
                                    check=False, timeout=60),
              # the server drops the garbage handshake: EOF, or a reset when it closes first
              "error reading server preface: (EOF|.*connection reset by peer)")
        # TLS 1.1 and 1.0 with the good client cert (SECLEVEL=0: so OpenSSL itself would offer them)
        for proto in ("-tls1_1", "-tls1"):
            r = run(["bash", "-c", f"openssl s_client -connect {farm.host(host).addr}:{PORT} {proto} "
                                   f"-cipher DEFAULT@SECLEVEL=0 -CAfile {farm.client.ca} -cert {farm.client.cert} "
                                   f"-key {farm.client.key} </dev/null"], check=False, timeout=60)
            check(f"TLS 1.1 or older client ({proto})", r, "alert protocol version")
        # ...while the same call with TLS 1.2 completes the handshake (the control of the line above)
        r = run(["bash", "-c", f"openssl s_client -connect {farm.host(host).addr}:{PORT} -tls1_2 "
                               f"-CAfile {farm.client.ca} -cert {farm.client.cert} -key {farm.client.key} </dev/null"],
                check=False, timeout=60)
        assert r.returncode == 0 and "Verify return code: 0 (ok)" in r.stdout, r.stdout[-1000:] + r.stderr[-1000:]

    for name in attempts:
        figures.record(f"refused: {name}", figures.ratio(refused[name], attempts[name]))
    figures.record("refused: all TLS bad clients x nodes",
                   figures.ratio(sum(refused.values()), sum(attempts.values())))
    assert not detail, "\n".join(detail)


def test_p224_client_key_go_client_is_refused(farm: Farm) -> None:
    c = write_client(farm.dir / "bad-clients", "p224", farm.ca.cert_pem,
                     pki.make_client(farm.ca, curve=ec.SECP224R1()))
    results = [farm.buildctl(h, "debug", "workers", client=c, check=False, timeout=60) for h in NODES]
    results += [curl_grpc(farm, h, c, "--tlsv1.3") for h in NODES]
    refused = [r for r in results if r.returncode != 0 and re.search(ALERT, r.stderr)]
    figures.record("refused: P-224 client key (buildctl; curl TLS 1.3)", figures.ratio(len(refused), len(results)))
    assert len(refused) == len(results), [r.stderr[-300:] for r in results]


@pytest.mark.xfail(strict=True, reason="upstream gap, seen here: buildkitd's Go TLS server accepts a CA-signed "
                   "P-224 client cert over TLS 1.2 (it has no min-version or curve option); the farm's own CA "
                   "issues P-256 keys only, so only a holder of the CA key could make one")
def test_p224_client_key_openssl_tls12_is_refused(farm: Farm) -> None:
    c = write_client(farm.dir / "bad-clients", "p224-12", farm.ca.cert_pem,
                     pki.make_client(farm.ca, curve=ec.SECP224R1()))
    results = [curl_grpc(farm, h, c, "--tlsv1.2", "--tls-max", "1.2") for h in NODES]
    n_served = sum(served(r) for r in results)
    figures.record("P-224 client key, OpenSSL over TLS 1.2 (known upstream gap)",
                   f"refused {len(results) - n_served}/{len(results)}")
    assert n_served == 0


def listening(farm: Farm, host: str) -> str:
    return farm.ssh(host, f"ss -Hltn 'sport = :{PORT}'").stdout.strip()


@pytest.mark.parametrize("host", NODES)
def test_a_node_without_its_tls_files_never_starts(farm: Farm, host: str) -> None:
    tls = "/etc/buildkit/tls"
    farm.ssh(host, f"/opt/buildkit-farm/bkf-node.sh stop && cp -a {tls} /etc/buildkit/tls.saved")
    outcomes: list[str] = []
    try:
        for f in ("key.pem", "cert.pem", "ca.pem"):
            # missing (or empty): the script refuses before anything starts
            r = farm.ssh(host, f"rm -f {tls}/{f}; /opt/buildkit-farm/bkf-node.sh start", check=False, timeout=120)
            ok = r.returncode != 0 and "refusing to start buildkitd without TLS material" in r.stderr
            outcomes.append(f"missing {f}: " + ("refused" if ok and not listening(farm, host) else r.stderr[-300:]))
            farm.ssh(host, f"cp -a /etc/buildkit/tls.saved/{f} {tls}/{f}")
            # present but unusable (garbage): the daemon's own argv exits, nothing listens
            r = farm.ssh(host, f"echo garbage > {tls}/{f}; timeout 30 /opt/buildkit-farm/bkf-node.sh run",
                         check=False, timeout=120)
            unusable = r"could not load server key pair|failed to append ca cert|failed to find any PEM data"
            ok = r.returncode not in (0, 124) and re.search(unusable, r.stderr) is not None
            outcomes.append(f"unusable {f}: " + ("refused" if ok and not listening(farm, host) else r.stderr[-300:]))
            farm.ssh(host, f"cp -a /etc/buildkit/tls.saved/{f} {tls}/{f}")
    finally:
        farm.ssh(host, f"rm -rf {tls} && mv /etc/buildkit/tls.saved {tls} && /opt/buildkit-farm/bkf-node.sh start")
    figures.record(f"never starts without TLS files ({host})",
                   figures.ratio(sum(o.endswith(": refused") for o in outcomes), len(outcomes)))
    assert all(o.endswith(": refused") for o in outcomes), outcomes
    assert farm.buildctl(host, "debug", "workers").returncode == 0


def test_insecure_entitlements_are_denied(farm: Farm) -> None:
    ctx = farm.context("entitlements", "FROM scratch\nADD rootfs-amd64.tar /\nARG N\nRUN echo $N > /n\n")
    denied = 0
    for host in NODES:
        farm.build(host, ctx, build_args={"N": "control"})  # the same build, no entitlement asked: built
        for ent in ("security.insecure", "network.host"):
            r = farm.build(host, ctx, build_args={"N": ent}, extra=("--allow", ent), check=False, timeout=120)
            denied += r.returncode != 0 and f"entitlement {ent} is not allowed" in r.stderr
            assert r.returncode != 0, r.stderr[-2000:]
            assert f"entitlement {ent} is not allowed" in r.stderr, r.stderr[-2000:]
    figures.record("denied: insecure entitlements x nodes", figures.ratio(denied, 2 * len(NODES)))


@pytest.fixture
def metadata_service(farm: Farm) -> Iterator[str]:
    """169.254.169.254:80 served from the metadata host's namespace (also on its own address), and each
    node's host routes it there: a stand-in cloud metadata service only the firewall keeps RUN steps from."""
    meta = farm.host(METADATA_HOST)
    run(["ip", "-n", f"bkf-{meta.name}", "addr", "add", "169.254.169.254/32", "dev", "lo"])
    for h in NODES:
        run(["ip", "-n", f"bkf-{h}", "route", "replace", "169.254.169.254/32", "via", meta.addr])
    server = subprocess.Popen(
        ["nsenter", f"--net=/run/netns/bkf-{meta.name}", "python3", "-c",
         "import socket\ns = socket.create_server(('0.0.0.0', 80))\n"
         "while True:\n    c, _ = s.accept(); c.sendall(b'metadata'); c.close()\n"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield meta.addr
    finally:
        server.kill()
        server.wait()


def probe(name: str, addr: str, port: int) -> str:
    # busybox nc has no -z: it exits 0 once connected (stdin is empty)
    return f"(nc -w 3 {addr} {port} </dev/null >/dev/null 2>&1 && echo {name}=reachable || echo {name}=blocked)"


def test_run_steps_reach_neither_the_daemon_sshd_nor_metadata(farm: Farm, metadata_service: str) -> None:
    blocked = total = 0
    for host in NODES:
        addr = farm.host(host).addr
        # positive control from the node's host itself: the metadata stand-in answers there
        r = farm.ssh(host, "timeout 5 bash -c 'exec 3<>/dev/tcp/169.254.169.254/80; head -c 8 <&3'", check=False)
        assert r.stdout == "metadata", (r.stdout, r.stderr)
        ctx = farm.context(f"probe-{host}", "FROM scratch\nADD rootfs-amd64.tar /\nARG NONCE\n"
                           f"RUN {{ {probe('control', metadata_service, 80)}; "
                           f"{probe('metadata', '169.254.169.254', 80)}; {probe('daemon-port', addr, PORT)}; "
                           f"{probe('sshd', addr, 22)}; }} > /r\n")
        out = farm.dir / f"probe-out-{host}"
        farm.build(host, ctx, out=out, build_args={"NONCE": str(id(out))})
        seen = (out / "r").read_text().split()
        assert seen[0] == "control=reachable", seen  # the same listener, by its other address
        blocked += sum(s.endswith("=blocked") for s in seen[1:])
        total += len(seen) - 1
        assert seen[1:] == ["metadata=blocked", "daemon-port=blocked", "sshd=blocked"], seen
    figures.record("blocked: RUN step -> metadata, daemon port, sshd x nodes", figures.ratio(blocked, total))
