"""The substitute tls/command plugins (toolchain/providers/bkf_providers), driven without the engine.

The servicer methods get real protobuf requests, so (de)serialization of secrets,
unknowns and assets is covered too. Remote operations run their "remote" shell
scripts through `sh -c` instead of ssh (no sshd needed); the ssh command line and
known_hosts pinning are tested as pure functions.

Over 300 lines on purpose: every resource and property the program relies on, per provider.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store
from google.protobuf import empty_pb2
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

# bkf_providers is importable through pytest's pythonpath (pyproject.toml).
from bkf_providers import command, tls, wire
from bkf_providers.server import Provider
from bkf_providers.wire import ASSET_SIG, SIG_KEY, UNKNOWN, Secret

# The plugin processes started below import the package from here, as the launchers do.
PROVIDERS_DIR = Path(__file__).resolve().parents[2] / "toolchain" / "providers"

PK = "tls:index/privateKey:PrivateKey"
SSC = "tls:index/selfSignedCert:SelfSignedCert"
CSR = "tls:index/certRequest:CertRequest"
LSC = "tls:index/locallySignedCert:LocallySignedCert"
LOCAL = "command:local:Command"
REMOTE = "command:remote:Command"
COPY = "command:remote:CopyToRemote"


# ---------------------------------------------------------------------------------------------
# driving the servicer


class Aborted(Exception):
    pass


class FakeContext:
    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(f"{code.name}: {details}")


class Driver:
    """One provider servicer, called like the engine calls it."""

    def __init__(self, provider: Provider) -> None:
        self.p = provider
        self.ctx = FakeContext()

    @staticmethod
    def urn(token: str, name: str = "r") -> str:
        return f"urn:pulumi:test::proj::{token}::{name}"

    def check(self, token: str, news: dict[str, Any], olds: dict[str, Any] | None = None
              ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        r = self.p.Check(provider_pb2.CheckRequest(urn=self.urn(token), type=token, olds=wire.encode_props(olds or {}),
                                                   news=wire.encode_props(news)), self.ctx)
        return wire.decode_props(r.inputs), [(f.property, f.reason) for f in r.failures]

    def checked(self, token: str, news: dict[str, Any]) -> dict[str, Any]:
        inputs, failures = self.check(token, news)
        assert not failures, failures
        return inputs

    def create(self, token: str, inputs: dict[str, Any], preview: bool = False) -> tuple[str, dict[str, Any]]:
        r = self.p.Create(provider_pb2.CreateRequest(urn=self.urn(token), type=token,
                                                     properties=wire.encode_props(inputs), preview=preview), self.ctx)
        return r.id, wire.decode_props(r.properties)

    def up(self, token: str, news: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """Check + Create: (id, inputs, outputs)."""
        inputs = self.checked(token, news)
        id_, outs = self.create(token, inputs)
        return id_, inputs, outs

    def diff(self, token: str, olds: dict[str, Any], old_inputs: dict[str, Any],
             news: dict[str, Any]) -> provider_pb2.DiffResponse:
        return self.p.Diff(provider_pb2.DiffRequest(
            id="id", urn=self.urn(token), type=token, olds=wire.encode_props(olds),
            old_inputs=wire.encode_props(old_inputs), news=wire.encode_props(news)), self.ctx)

    def update(self, token: str, olds: dict[str, Any], old_inputs: dict[str, Any], news: dict[str, Any],
               preview: bool = False) -> dict[str, Any]:
        r = self.p.Update(provider_pb2.UpdateRequest(
            id="id", urn=self.urn(token), type=token, olds=wire.encode_props(olds),
            old_inputs=wire.encode_props(old_inputs), news=wire.encode_props(news), preview=preview), self.ctx)
        return wire.decode_props(r.properties)

    def delete(self, token: str, olds: dict[str, Any], old_inputs: dict[str, Any]) -> None:
        self.p.Delete(provider_pb2.DeleteRequest(id="id", urn=self.urn(token), type=token,
                                                 properties=wire.encode_props(olds),
                                                 old_inputs=wire.encode_props(old_inputs)), self.ctx)

    def read(self, token: str, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        r = self.p.Read(provider_pb2.ReadRequest(id="id", urn=self.urn(token), type=token,
                                                 properties=wire.encode_props(state),
                                                 inputs=wire.encode_props(inputs)), self.ctx)
        return wire.decode_props(r.properties)


@pytest.fixture(scope="module")
def t() -> Driver:
    return Driver(tls.make_provider())


@pytest.fixture(scope="module")
def c() -> Driver:
    return Driver(command.make_provider())


def plain(x: Any) -> Any:
    return wire.reveal(x)


# ---------------------------------------------------------------------------------------------
# wire format


def test_wire_round_trip_keeps_secrets_unknowns_assets_and_numbers() -> None:
    asset = {SIG_KEY: ASSET_SIG, "path": "/x", "hash": "ab"}
    props = {"s": Secret("k"), "nested": {"a": [1, 2.5, Secret({"b": True})], "u": UNKNOWN}, "asset": asset,
             "n": None, "zero": 0}
    back = wire.decode_props(wire.encode_props(props))
    assert back == {"s": Secret("k"), "nested": {"a": [1, 2.5, Secret({"b": True})], "u": UNKNOWN},
                    "asset": asset, "zero": 0}
    assert isinstance(back["zero"], int)
    assert wire.is_secret(back["nested"]) and wire.has_unknown(back) and not wire.has_unknown(back["s"])


# ---------------------------------------------------------------------------------------------
# tls: PrivateKey


@pytest.mark.parametrize(("news", "header", "cls", "curve", "ssh"), [
    ({"algorithm": "RSA"}, "RSA PRIVATE KEY", rsa.RSAPrivateKey, None, True),
    ({"algorithm": "ECDSA", "ecdsaCurve": "P256"}, "EC PRIVATE KEY", ec.EllipticCurvePrivateKey, "secp256r1", True),
    ({"algorithm": "ECDSA"}, "EC PRIVATE KEY", ec.EllipticCurvePrivateKey, "secp224r1", False),
    ({"algorithm": "ECDSA", "ecdsaCurve": "P384"}, "EC PRIVATE KEY", ec.EllipticCurvePrivateKey, "secp384r1", True),
    ({"algorithm": "ED25519"}, "PRIVATE KEY", ed25519.Ed25519PrivateKey, None, True),
])
def test_private_key_of_each_algorithm_parses(t: Driver, news: dict[str, Any], header: str, cls: type,
                                              curve: str | None, ssh: bool) -> None:
    id_, inputs, outs = t.up(PK, news)
    assert inputs["ecdsaCurve"] == news.get("ecdsaCurve", "P224") and inputs["rsaBits"] == 2048  # upstream defaults
    for k in ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"):
        assert isinstance(outs[k], Secret), f"{k} must be secret"
    for k in ("publicKeyPem", "publicKeyOpenssh", "publicKeyFingerprintMd5", "publicKeyFingerprintSha256"):
        assert not isinstance(outs[k], Secret)
    key_pem = outs["privateKeyPem"].value
    assert key_pem.startswith(f"-----BEGIN {header}-----\n") and key_pem.endswith("-----\n")
    key = serialization.load_pem_private_key(key_pem.encode(), None)
    assert isinstance(key, cls)
    if curve:
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == curve
    if isinstance(key, rsa.RSAPrivateKey):
        assert key.key_size == 2048
    pkcs8 = outs["privateKeyPemPkcs8"].value
    assert pkcs8.startswith("-----BEGIN PRIVATE KEY-----")
    spki = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert outs["publicKeyPem"] == spki.decode()
    assert serialization.load_pem_private_key(pkcs8.encode(), None).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo) == spki
    assert id_ == hashlib.sha1(tls.pem_body(spki)).hexdigest()
    if ssh:
        sshkey = serialization.load_ssh_private_key(outs["privateKeyOpenssh"].value.encode(), None)
        pub = outs["publicKeyOpenssh"]
        assert pub.endswith("\n") and serialization.load_ssh_public_key(pub.encode()).public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) == sshkey.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        assert outs["publicKeyFingerprintSha256"].startswith("SHA256:")
        assert len(outs["publicKeyFingerprintMd5"].split(":")) == 16
    else:  # P-224 has no SSH form (upstream leaves these empty)
        assert outs["privateKeyOpenssh"] == Secret("") and outs["publicKeyOpenssh"] == ""


def test_private_key_check_rejects_unknown_algorithm_and_curve(t: Driver) -> None:
    _, failures = t.check(PK, {"algorithm": "DSA", "ecdsaCurve": "P999"})
    assert {p for p, _ in failures} == {"algorithm", "ecdsaCurve"}
    _, failures = t.check(PK, {})
    assert failures == [("algorithm", "Missing required property 'algorithm'")]
    _, failures = t.check(PK, {"algorithm": UNKNOWN})  # preview: not known yet
    assert failures == []


def test_preview_returns_unknowns_and_runs_nothing(t: Driver, c: Driver, tmp_path: Path) -> None:
    id_, outs = t.create(PK, t.checked(PK, {"algorithm": "ECDSA", "ecdsaCurve": "P256"}), preview=True)
    assert id_ == ""
    assert outs["publicKeyPem"] is UNKNOWN and outs["privateKeyPem"] is UNKNOWN
    assert outs["algorithm"] == "ECDSA"
    _, outs = t.create(LSC, {"certRequestPem": UNKNOWN, "caPrivateKeyPem": UNKNOWN, "caCertPem": UNKNOWN,
                             "validityPeriodHours": 1, "allowedUses": ["server_auth"]}, preview=True)
    assert outs["certPem"] is UNKNOWN and outs["validityEndTime"] is UNKNOWN
    marker = tmp_path / "ran"
    inputs = c.checked(LOCAL, {"create": f"touch {marker}"})
    _, outs = c.create(LOCAL, inputs, preview=True)
    assert outs["stdout"] is UNKNOWN and outs["stderr"] is UNKNOWN and not marker.exists()
    outs = c.update(LOCAL, {**inputs, "stdout": "", "stderr": ""}, inputs, {**inputs, "update": "touch x"},
                    preview=True)
    assert outs["stdout"] is UNKNOWN and not marker.exists()


# ---------------------------------------------------------------------------------------------
# tls: certificates


SERVER_USES = ["digital_signature", "key_encipherment", "server_auth"]
CLIENT_USES = ["digital_signature", "key_encipherment", "client_auth"]
CA_USES = ["cert_signing", "crl_signing", "digital_signature"]


@pytest.fixture(scope="module")
def pki(t: Driver) -> dict[str, Any]:
    """A CA (ECDSA P256), a server cert (ECDSA P256; DNS + IP SANs) and a client cert (RSA)."""
    _, _, ca_key = t.up(PK, {"algorithm": "ECDSA", "ecdsaCurve": "P256"})
    ca_id, ca_in, ca = t.up(SSC, {
        "privateKeyPem": ca_key["privateKeyPem"], "isCaCertificate": True, "validityPeriodHours": 720,
        "earlyRenewalHours": 24, "allowedUses": CA_USES,
        "subject": {"commonName": "farm CA", "organization": "buildkit-farm test"}})
    issued: dict[str, Any] = {"ca_key": ca_key, "ca": ca, "ca_in": ca_in, "ca_id": ca_id}
    for who, alg, uses, names, ips in (
            ("server", {"algorithm": "ECDSA", "ecdsaCurve": "P256"}, SERVER_USES, ["node-1.example", "localhost"],
             ["127.0.0.1", "10.77.0.11", "fd00::11"]),
            ("client", {"algorithm": "RSA"}, CLIENT_USES, None, None)):
        _, _, key = t.up(PK, alg)
        _, _, csr = t.up(CSR, {"privateKeyPem": key["privateKeyPem"], "dnsNames": names, "ipAddresses": ips,
                               "subject": {"commonName": who, "organization": "buildkit-farm test"}})
        _, lsc_in, cert = t.up(LSC, {
            "certRequestPem": csr["certRequestPem"], "caPrivateKeyPem": ca_key["privateKeyPem"],
            "caCertPem": ca["certPem"], "validityPeriodHours": 240, "earlyRenewalHours": 24, "allowedUses": uses})
        issued[who] = {"key": key, "csr": csr, "cert": cert, "in": lsc_in}
    return issued


def load(cert_pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert_pem.encode())


def test_ca_server_and_client_chain_verifies(pki: dict[str, Any]) -> None:
    ca, server, client = load(pki["ca"]["certPem"]), load(pki["server"]["cert"]["certPem"]), \
        load(pki["client"]["cert"]["certPem"])
    store = Store([ca])
    for name in (x509.DNSName("node-1.example"), x509.IPAddress(ipaddress.ip_address("10.77.0.11")),
                 x509.IPAddress(ipaddress.ip_address("fd00::11"))):
        chain = PolicyBuilder().store(store).build_server_verifier(name).verify(server, [])
        assert chain[-1] == ca
    # the web-PKI client policy wants a SAN, which the program's client certs lack (Go does not):
    # the signature here, the whole client chain in the mutual-TLS test below
    client.verify_directly_issued_by(ca)

    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length is None
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign and ku.digital_signature
    ca_skid = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    for leaf, eku in ((server, ExtendedKeyUsageOID.SERVER_AUTH), (client, ExtendedKeyUsageOID.CLIENT_AUTH)):
        assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [eku]
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ca_skid
        assert leaf.issuer == ca.subject
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["node-1.example", "localhost"]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "10.77.0.11", "fd00::11"]
    assert server.subject.rfc4514_string() == "CN=server,O=buildkit-farm test"

    out = pki["server"]["cert"]
    assert out["caKeyAlgorithm"] == "ECDSA" and out["readyForRenewal"] is False
    assert out["validityEndTime"] == server.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert tls.parse_rfc3339(out["validityEndTime"]) - tls.parse_rfc3339(out["validityStartTime"]) == \
        timedelta(hours=240)
    assert isinstance(out["caPrivateKeyPem"], Secret)
    assert pki["ca"]["keyAlgorithm"] == "ECDSA" and isinstance(pki["ca"]["privateKeyPem"], Secret)
    assert pki["server"]["csr"]["keyAlgorithm"] == "ECDSA"


def test_issued_certs_work_for_mutual_tls(pki: dict[str, Any], tmp_path: Path) -> None:
    def files(who: str) -> tuple[str, str]:
        (tmp_path / f"{who}.crt").write_text(pki[who]["cert"]["certPem"])
        (tmp_path / f"{who}.key").write_text(pki[who]["key"]["privateKeyPem"].value)
        return str(tmp_path / f"{who}.crt"), str(tmp_path / f"{who}.key")

    (tmp_path / "ca.crt").write_text(pki["ca"]["certPem"])
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(*files("server"))
    sctx.load_verify_locations(str(tmp_path / "ca.crt"))
    sctx.verify_mode = ssl.CERT_REQUIRED
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_cert_chain(*files("client"))
    cctx.load_verify_locations(str(tmp_path / "ca.crt"))
    a, b = socket.socketpair()
    seen: dict[str, Any] = {}

    def serve() -> None:
        with sctx.wrap_socket(a, server_side=True) as s:
            seen["peer"] = s.getpeercert()
            s.sendall(b"ok")

    th = threading.Thread(target=serve)
    th.start()
    with cctx.wrap_socket(b, server_hostname="node-1.example") as s:
        assert s.recv(2) == b"ok"
    th.join(5)
    assert ((("commonName", "client"),) in seen["peer"]["subject"])


def test_diff_replaces_on_input_change_and_updates_early_renewal(t: Driver, pki: dict[str, Any]) -> None:
    olds, old_in = pki["ca"], pki["ca_in"]
    same = t.diff(SSC, olds, old_in, dict(old_in))
    assert same.changes == provider_pb2.DiffResponse.DIFF_NONE
    # secretness alone is no change
    assert t.diff(SSC, olds, old_in, {**old_in, "validityPeriodHours": Secret(720)}).changes == \
        provider_pb2.DiffResponse.DIFF_NONE
    d = t.diff(SSC, olds, old_in, {**old_in, "validityPeriodHours": 100})
    assert d.changes == provider_pb2.DiffResponse.DIFF_SOME and list(d.replaces) == ["validityPeriodHours"]
    assert d.detailedDiff["validityPeriodHours"].kind == provider_pb2.PropertyDiff.UPDATE_REPLACE
    d = t.diff(SSC, olds, old_in, {**old_in, "subject": {"commonName": "other CA"}})
    assert list(d.replaces) == ["subject"]
    d = t.diff(SSC, olds, old_in, {**old_in, "privateKeyPem": UNKNOWN})  # a new key in preview
    assert list(d.replaces) == ["privateKeyPem"]
    # upstream updates earlyRenewalHours in place: the cert stays
    d = t.diff(SSC, olds, old_in, {**old_in, "earlyRenewalHours": 48})
    assert list(d.diffs) == ["earlyRenewalHours"] and not d.replaces
    outs = t.update(SSC, olds, old_in, {**old_in, "earlyRenewalHours": 48})
    assert outs["certPem"] == olds["certPem"] and outs["earlyRenewalHours"] == 48
    srv = pki["server"]
    d = t.diff(LSC, srv["cert"], srv["in"], {**srv["in"], "allowedUses": CLIENT_USES})
    assert list(d.replaces) == ["allowedUses"]


def test_cert_in_renewal_window_is_replaced(t: Driver, pki: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    srv = pki["server"]
    end = tls.parse_rfc3339(srv["cert"]["validityEndTime"])
    monkeypatch.setattr(tls, "now", lambda: end - timedelta(hours=24, minutes=1))
    assert t.diff(LSC, srv["cert"], srv["in"], dict(srv["in"])).changes == provider_pb2.DiffResponse.DIFF_NONE
    monkeypatch.setattr(tls, "now", lambda: end - timedelta(hours=23))  # now >= end - earlyRenewalHours
    d = t.diff(LSC, srv["cert"], srv["in"], dict(srv["in"]))
    assert d.changes == provider_pb2.DiffResponse.DIFF_SOME and list(d.replaces) == ["readyForRenewal"]
    assert not d.detailedDiff["readyForRenewal"].inputDiff
    assert t.read(LSC, srv["cert"], srv["in"])["readyForRenewal"] is True  # refresh shows it too
    # a CA whose earlyRenewalHours reaches back to now is renewed as well
    ca_end = tls.parse_rfc3339(pki["ca"]["validityEndTime"])
    monkeypatch.setattr(tls, "now", lambda: ca_end - timedelta(hours=100))
    d = t.diff(SSC, pki["ca"], pki["ca_in"], {**pki["ca_in"], "earlyRenewalHours": 200})
    assert set(d.replaces) == {"readyForRenewal"} and set(d.diffs) == {"earlyRenewalHours", "readyForRenewal"}


def test_cert_inputs_are_validated(t: Driver, pki: dict[str, Any]) -> None:
    _, failures = t.check(LSC, {"certRequestPem": "x", "caPrivateKeyPem": "x", "caCertPem": "x",
                                "validityPeriodHours": -1, "allowedUses": ["server_auth", "fly"]})
    assert {p for p, _ in failures} == {"validityPeriodHours", "allowedUses"}
    _, failures = t.check(SSC, {"privateKeyPem": "x"})
    assert {p for p, _ in failures} == {"validityPeriodHours", "allowedUses"}
    with pytest.raises(Aborted, match="doesn't match parent's PublicKey"):
        t.create(LSC, {**pki["server"]["in"], "caPrivateKeyPem": pki["server"]["key"]["privateKeyPem"]})
    with pytest.raises(Aborted, match="Must contain at least one Distinguished Name"):
        t.create(SSC, {**pki["ca_in"], "subject": None})


# ---------------------------------------------------------------------------------------------
# command: local.Command


def test_local_command_create_stdin_environment_and_trimmed_output(c: Driver, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BKF_PROVIDER_ENV", "inherited")
    id_, inputs, outs = c.up(LOCAL, {
        "create": 'read line; echo "$line|$GREETING|$BKF_PROVIDER_ENV|$(pwd)"; echo warn >&2',
        "stdin": Secret("from stdin\n"), "environment": Secret({"GREETING": "hello"}), "dir": str(tmp_path)})
    assert id_.startswith("r") and len(id_) == 17
    assert inputs["addPreviousOutputInEnv"] is True and inputs["stdin"] == Secret("from stdin\n")
    assert outs["stdout"] == f"from stdin|hello|inherited|{tmp_path}" and outs["stderr"] == "warn"
    assert outs["environment"] == Secret({"GREETING": "hello"})  # secret inputs stay secret
    _, _, outs = c.up(LOCAL, {"create": "echo -n $0", "interpreter": ["/bin/bash", "-c"]})
    assert outs["stdout"] == "/bin/bash"
    _, _, outs = c.up(LOCAL, {})
    assert outs["stdout"] == "" and outs["stderr"] == ""


def test_local_command_failure_reports_exit_code_and_output(c: Driver) -> None:
    inputs = c.checked(LOCAL, {"create": "echo partial; echo broken >&2; exit 3"})
    with pytest.raises(Aborted) as e:
        c.create(LOCAL, inputs)
    msg = str(e.value)
    assert 'exit status 3: running "echo partial; echo broken >&2; exit 3"' in msg
    assert "partial" in msg and "broken" in msg


def test_local_command_update_delete_and_triggers(c: Driver, tmp_path: Path) -> None:
    log = tmp_path / "log"
    base = {"create": "echo created", "update": f'echo "update after $PULUMI_COMMAND_STDOUT" | tee -a {log}',
            "delete": f'echo "delete after $PULUMI_COMMAND_STDOUT" >> {log}', "triggers": ["a", 1]}
    _, inputs, outs = c.up(LOCAL, base)
    assert outs["stdout"] == "created"
    news = c.checked(LOCAL, {**base, "triggers": ["a", 2]})
    d = c.diff(LOCAL, outs, inputs, news)
    assert list(d.replaces) == ["triggers"]
    news = c.checked(LOCAL, {**base, "create": "echo changed"})
    d = c.diff(LOCAL, outs, inputs, news)
    assert list(d.diffs) == ["create"] and not d.replaces  # not a trigger: an update
    outs2 = c.update(LOCAL, outs, inputs, news)
    assert outs2["stdout"] == "update after created" and outs2["create"] == "echo changed"
    # without `update`, an update runs `create` again
    no_update = {k: v for k, v in news.items() if k != "update"}
    assert c.update(LOCAL, outs2, news, no_update)["stdout"] == "echo changed".removeprefix("echo ")
    c.delete(LOCAL, outs2, news)
    assert log.read_text().splitlines() == ["update after created", "delete after update after created"]
    # addPreviousOutputInEnv: false hides the previous outputs
    quiet = c.checked(LOCAL, {"update": 'echo "[$PULUMI_COMMAND_STDOUT]"', "addPreviousOutputInEnv": False})
    assert c.update(LOCAL, {**quiet, "stdout": "old", "stderr": ""}, quiet, quiet)["stdout"] == "[]"


def test_local_command_rejects_what_the_substitute_lacks(c: Driver) -> None:
    _, failures = c.check(LOCAL, {"create": "true", "assetPaths": ["*"], "logging": "loud"})
    assert {p for p, _ in failures} == {"assetPaths", "logging"}


# ---------------------------------------------------------------------------------------------
# command: remote (ssh command line as pure functions; "remote" scripts through sh)


CONN = {"host": "10.77.0.11", "port": 2222, "user": "admin", "privateKey": "KEY", "perDialTimeout": 15}


def opts(argv: list[str]) -> dict[str, str]:
    return dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-o")


def test_ssh_argv_without_host_key_ignores_host_keys() -> None:
    argv = command.ssh_argv(CONN, "uname -a", key_file="/tmp/k/id")
    assert argv[:3] == ["ssh", "-F", "/dev/null"]
    assert argv[-3:] == ["--", "10.77.0.11", "uname -a"]
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-l") + 1] == "admin"
    assert argv[argv.index("-i") + 1] == "/tmp/k/id"
    o = opts(argv)
    assert o["BatchMode"] == "yes" and o["ConnectTimeout"] == "15" and o["IdentitiesOnly"] == "yes"
    assert o["StrictHostKeyChecking"] == "no" and o["UserKnownHostsFile"] == "/dev/null"
    assert "HostKeyAlias" not in o
    o = opts(command.ssh_argv({"host": "h", "perDialTimeout": 0, "agentSocketPath": "/run/a b"}, "true"))
    assert "ConnectTimeout" not in o and o["IdentityAgent"] == '"/run/a b"'
    assert "-i" not in command.ssh_argv({"host": "h"}, "true")


def test_ssh_argv_with_host_key_pins_it() -> None:
    conn = {**CONN, "hostKey": "ssh-rsa AAAAB3Nza comment"}
    with command.ssh_files(conn) as files:
        assert files.key and files.known_hosts
        assert stat.S_IMODE(os.stat(files.key).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(os.path.dirname(files.key)).st_mode) == 0o700
        assert Path(files.key).read_text() == "KEY\n"
        assert Path(files.known_hosts).read_text() == f"{command.PINNED_ALIAS} ssh-rsa AAAAB3Nza\n"
        o = opts(command.ssh_argv(conn, "true", files.key, files.known_hosts))
        assert o["StrictHostKeyChecking"] == "yes" and o["UserKnownHostsFile"] == files.known_hosts
        assert o["HostKeyAlias"] == command.PINNED_ALIAS
        # upstream offers only the pinned key's own algorithm (SHA-1 ssh-rsa), not rsa-sha2-*
        assert o["HostKeyAlgorithms"] == "ssh-rsa"
    assert not os.path.exists(files.key)
    assert command.host_key_entry("ssh-ed25519 AAAAC3")[1] == "ssh-ed25519"


def test_remote_check_defaults_and_unsupported_inputs(c: Driver) -> None:
    inputs = c.checked(REMOTE, {"connection": Secret({"host": "h", "privateKey": "k"}), "create": "true"})
    assert inputs["connection"] == Secret({"host": "h", "privateKey": "k", "user": "root", "port": 22,
                                           "dialErrorLimit": 10, "perDialTimeout": 15})
    _, failures = c.check(REMOTE, {"connection": {"host": "h", "password": "pw", "proxy": {"host": "b"}},
                                   "environment": {"A": "1"}})
    assert {p for p, _ in failures} == {"environment", "connection.password", "connection.proxy"}
    assert "not supported" in dict(failures)["environment"]
    _, failures = c.check(COPY, {"connection": {"host": "h"}, "source": {SIG_KEY: ASSET_SIG, "uri": "http://x"}})
    assert {p for p, _ in failures} == {"remotePath", "asset"}


@pytest.fixture
def local_ssh(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run the "remote" command through sh on this machine instead of ssh; records the commands."""
    seen: list[str] = []

    def fake(conn: Any, remote_command: str, key_file: Any = None, known_hosts: Any = None, ssh: str = "ssh",
             subsystem: bool = False) -> list[str]:
        assert key_file and Path(key_file).read_text() == "KEY\n"
        if subsystem:  # the sftp subsystem is there (an sftp server reading EOF exits 0)
            assert remote_command == "sftp"
            return ["cat"]
        seen.append(remote_command)
        return ["sh", "-c", remote_command]

    monkeypatch.setattr(command, "ssh_argv", fake)
    return seen


def test_remote_command_lifecycle_with_secret_stdin(c: Driver, local_ssh: list[str], tmp_path: Path) -> None:
    conn = Secret(CONN)
    _, inputs, outs = c.up(REMOTE, {"connection": conn, "create": f"cat > {tmp_path}/bundle; echo installed",
                                    "delete": f"rm {tmp_path}/bundle", "stdin": Secret("KEY MATERIAL")})
    assert (tmp_path / "bundle").read_text() == "KEY MATERIAL" and outs["stdout"] == "installed"
    assert isinstance(outs["connection"], Secret) and isinstance(outs["stdin"], Secret)
    assert not isinstance(outs["stdout"], Secret)
    c.delete(REMOTE, outs, inputs)
    assert not (tmp_path / "bundle").exists()
    with pytest.raises(Aborted, match="Process exited with status 7"):
        c.create(REMOTE, c.checked(REMOTE, {"connection": conn, "create": "exit 7"}))


def test_remote_dial_failures_are_retried_then_reported(c: Driver, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def refused(*args: Any, **kwargs: Any) -> list[str]:
        calls.append(1)
        return ["sh", "-c", "echo 'ssh: connect to host h port 22: Connection refused' >&2; exit 255"]

    monkeypatch.setattr(command, "ssh_argv", refused)
    monkeypatch.setattr(command.time, "sleep", lambda s: None)
    inputs = c.checked(REMOTE, {"connection": {"host": "h", "dialErrorLimit": 3}, "create": "true"})
    with pytest.raises(Aborted, match="failed 3 time"):
        c.create(REMOTE, inputs)
    assert len(calls) == 1  # one command line, dialled three times
    monkeypatch.setattr(command, "ssh_argv", lambda *a, **k: [
        "sh", "-c", "echo 'admin@h: Permission denied (publickey).' >&2; exit 255"])
    with pytest.raises(Aborted, match=r"ssh: connecting to root@h:22 failed: .*Permission denied"):
        c.create(REMOTE, inputs)


def test_copy_to_remote_file_text_and_directory(c: Driver, local_ssh: list[str], tmp_path: Path) -> None:
    src = tmp_path / "buildkit.tar.gz"
    src.write_bytes(b"tarball v1")
    dest = tmp_path / "remote"
    (dest / "artifacts").mkdir(parents=True)
    conn = Secret(CONN)
    asset = {SIG_KEY: ASSET_SIG, "path": str(src)}
    # into an existing directory: dest/<basename>
    _, inputs, outs = c.up(COPY, {"connection": conn, "source": asset, "remotePath": str(dest / "artifacts"),
                                  "triggers": ["sha-1"]})
    assert (dest / "artifacts" / "buildkit.tar.gz").read_bytes() == b"tarball v1"
    assert isinstance(outs["connection"], Secret)
    assert inputs["source"]["hash"] == hashlib.sha256(b"tarball v1").hexdigest()
    # to a file path whose parent does not exist: upstream's sftp Create fails, so does this one
    deep = str(dest / "a" / "b" / "f")
    with pytest.raises(Aborted, match=r"failed to create remote file .*/a/b/f: file does not exist"):
        c.create(COPY, c.checked(COPY, {"connection": conn, "source": asset, "remotePath": deep}))
    assert not (dest / "a").exists()
    # a new file content updates in place (copies again); new triggers replace
    src.write_bytes(b"tarball v2")
    news = c.checked(COPY, {"connection": conn, "source": asset, "remotePath": str(dest / "artifacts"),
                            "triggers": ["sha-1"]})
    d = c.diff(COPY, outs, inputs, news)
    assert list(d.diffs) == ["source"] and not d.replaces
    c.update(COPY, outs, inputs, news)
    assert (dest / "artifacts" / "buildkit.tar.gz").read_bytes() == b"tarball v2"
    assert list(c.diff(COPY, outs, inputs, {**news, "triggers": ["sha-2"]}).replaces) == ["triggers"]
    # delete leaves the file (upstream)
    c.delete(COPY, outs, inputs)
    assert (dest / "artifacts" / "buildkit.tar.gz").exists()
    # text asset; a directory (FileArchive) is copied recursively under its name
    c.up(COPY, {"connection": conn, "source": {SIG_KEY: ASSET_SIG, "text": "hello"}, "remotePath": str(dest / "t")})
    assert (dest / "t").read_text() == "hello"
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "x").write_text("x")
    c.up(COPY, {"connection": conn, "source": {SIG_KEY: wire.ARCHIVE_SIG, "path": str(tree)},
                "remotePath": str(dest / "dirs")})
    assert (dest / "dirs" / "tree" / "sub" / "x").read_text() == "x"
    assert len(local_ssh) == 5


def test_copy_to_remote_needs_the_sftp_subsystem_like_upstream(c: Driver, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    """Upstream copies over SFTP: a host whose sshd has no sftp subsystem fails with x/crypto's
    error and nothing is written (the real OpenSSH message is what ssh prints then)."""
    ran: list[str] = []

    def no_sftp(conn: Any, remote_command: str, key_file: Any = None, known_hosts: Any = None, ssh: str = "ssh",
                subsystem: bool = False) -> list[str]:
        ran.append(f"{'subsystem ' if subsystem else ''}{remote_command}")
        if subsystem:
            return ["sh", "-c", "echo 'subsystem request failed on channel 0' >&2; exit 255"]
        return ["sh", "-c", remote_command]

    monkeypatch.setattr(command, "ssh_argv", no_sftp)
    src = tmp_path / "f"
    src.write_bytes(b"x")
    inputs = c.checked(COPY, {"connection": Secret(CONN), "source": {SIG_KEY: ASSET_SIG, "path": str(src)},
                              "remotePath": str(tmp_path / "out")})
    with pytest.raises(Aborted, match=r": ssh: subsystem request failed$"):
        c.create(COPY, inputs)
    assert ran == ["subsystem sftp"] and not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# the plugin contract: port on stdout, gRPC on it


@pytest.mark.parametrize(("name", "version", "token"), [("tls", "5.5.1", PK), ("command", "1.2.1", LOCAL)])
def test_plugin_announces_port_and_serves(name: str, version: str, token: str) -> None:
    proc = subprocess.Popen([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, sys.argv.pop(1)); "
                             "from bkf_providers.__main__ import main; main()", str(PROVIDERS_DIR), name,
                             "127.0.0.1:1", "--logtostderr"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = provider_pb2_grpc.ResourceProviderStub(ch)
            assert stub.GetPluginInfo(empty_pb2.Empty(), timeout=10).version == version
            cfg = stub.Configure(provider_pb2.ConfigureRequest(), timeout=10)
            assert cfg.acceptSecrets and cfg.supportsPreview and cfg.acceptResources
            assert f'"{token}"' in stub.GetSchema(provider_pb2.GetSchemaRequest(), timeout=10).schema
            with pytest.raises(grpc.RpcError) as e:
                stub.Invoke(provider_pb2.InvokeRequest(tok="x:y:z"), timeout=10)
            assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
