"""The cluster tier's renderer (tests/support/rendered.py), offline: the program under mocks with
its tls resources made for real gives usable certs that match the endpoints it exports, and a
second render with the same PKI state keeps them (as `pulumi up` would after a config change)."""

from __future__ import annotations

import ipaddress

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store

from tests.k8s.cluster import NODE_HOSTS, stack_yaml
from tests.support import rendered

IMAGE = "localhost/buildkit-farm/buildkit:v0.32.2-rootless-local@sha256:" + "a" * 64


def _render(pki: rendered.PkiState, **kubernetes: object) -> rendered.Rendered:
    return rendered.render(rendered.stack_config(stack_yaml(IMAGE, **kubernetes)), pki=pki)


def test_the_certs_are_real_and_name_the_exported_endpoints() -> None:
    pki: rendered.PkiState = {}
    r = _render(pki)
    assert r.outputs["endpoints"] == [f"tcp://{h}:1234" for h in NODE_HOSTS.values()]
    ca = x509.load_pem_x509_certificate(r.outputs["caCert"].encode())
    store = Store([ca])
    for secret in r.of_kind("Secret"):
        data = secret["stringData"]
        assert data["ca.pem"] == r.outputs["caCert"]
        cert = x509.load_pem_x509_certificate(data["cert.pem"].encode())
        host = NODE_HOSTS[secret["metadata"]["name"].removesuffix("-tls")]
        # a client dialling the exported endpoint verifies this cert against the exported CA
        verifier = PolicyBuilder().store(store).build_server_verifier(x509.IPAddress(ipaddress.ip_address(host)))
        verifier.verify(cert, [])
        assert "PRIVATE KEY" in data["key.pem"]
    client = x509.load_pem_x509_certificate(r.outputs["clientCert"].encode())
    eku = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert client.issuer == ca.subject


def test_a_second_render_with_the_same_state_keeps_the_pki() -> None:
    pki: rendered.PkiState = {}
    first, second = _render(pki), _render(pki, cpuLimit="1")
    assert second.outputs["caCert"] == first.outputs["caCert"]
    assert second.outputs["clientCert"] == first.outputs["clientCert"]
    assert _render({}).outputs["caCert"] != first.outputs["caCert"]
