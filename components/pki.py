"""The farm's private PKI (pulumi-tls): a CA, a server cert per node, client certs.

Dependency order is explicit in the inputs: a server cert takes the node's
*addresses* (an Elastic IP, a Service's load balancer address, a host name), so
the address exists before the cert; node components take the cert, so the cert
exists before the daemon starts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pulumi
import pulumi_tls as tls

from components.config.sections import PkiSpec

SERVER_USES = ["digital_signature", "key_encipherment", "server_auth"]
CLIENT_USES = ["digital_signature", "key_encipherment", "client_auth"]
CA_USES = ["cert_signing", "crl_signing", "digital_signature"]
#: Every PEM form the provider computes for a private key: all of them secret.
KEY_SECRET_OUTPUTS = ["private_key_pem", "private_key_pem_pkcs8", "private_key_openssh"]


def earliest(timestamps: Sequence[str]) -> str:
    """The earliest of RFC 3339 times, as UTC `YYYY-MM-DDTHH:MM:SSZ`.

    pulumi-tls writes validity times with nanoseconds in the provider's local zone, so
    comparing the strings would be wrong across zones: parse first.
    """
    if not timestamps:
        raise ValueError("no certificates")
    first = min(datetime.fromisoformat(_trim_fraction(t).replace("Z", "+00:00")) for t in timestamps)
    return first.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _trim_fraction(t: str) -> str:
    # Python parses at most microseconds: cut nanoseconds to six digits
    return re.sub(r"(\.\d{6})\d+", r"\1", t)


@dataclass(frozen=True)
class ServerIdentity:
    """One node's TLS identity: every name and address clients dial."""

    name: str
    dns_names: pulumi.Input[Sequence[str]]
    ip_addresses: pulumi.Input[Sequence[str]]


@dataclass(frozen=True)
class IssuedCert:
    cert_pem: pulumi.Output[str]
    #: secret
    private_key_pem: pulumi.Output[str]
    #: RFC 3339 time the cert stops being valid
    not_after: pulumi.Output[str]


@dataclass(frozen=True)
class PkiArgs:
    spec: PkiSpec
    servers: Sequence[ServerIdentity]
    #: subject organization, e.g. "buildkit-farm dev"
    organization: str


class Pki(pulumi.ComponentResource):
    """CA + per-node server certs + per-consumer client certs."""

    ca_cert_pem: pulumi.Output[str]
    """The CA certificate clients and daemons trust (PEM)."""
    servers: dict[str, IssuedCert]
    """Server certificate and key per node name."""
    clients: dict[str, IssuedCert]
    """Client certificate and key per consumer name (e.g. "ci")."""
    not_after: pulumi.Output[str]
    """The earliest expiry among all issued leaf certificates (RFC 3339)."""

    def __init__(self, name: str, args: PkiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("buildkit-farm:index:Pki", name, None, opts)
        self._spec = args.spec
        self._name = name
        self._org = args.organization

        ca_key = self._key(f"{name}-ca")
        ca = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(
                common_name=f"{args.organization} CA", organization=args.organization),
            is_ca_certificate=True,
            validity_period_hours=args.spec.ca_validity_hours,
            # Renew the CA while it can still sign a full-length leaf.
            early_renewal_hours=args.spec.validity_hours,
            allowed_uses=CA_USES,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.ca_cert_pem = ca.cert_pem
        self.servers = {
            s.name: self._issue(f"{name}-server-{s.name}", s.name, ca_key, ca, SERVER_USES,
                                s.dns_names, s.ip_addresses)
            for s in args.servers
        }
        self.clients = {
            c: self._issue(f"{name}-client-{c}", c, ca_key, ca, CLIENT_USES, None, None)
            for c in args.spec.clients
        }
        leaves = [c.not_after for c in [*self.servers.values(), *self.clients.values()]]
        self.not_after = pulumi.Output.all(*leaves).apply(earliest)
        self.register_outputs({
            "ca_cert_pem": self.ca_cert_pem,
            "not_after": self.not_after,
        })

    def _key(self, name: str) -> tls.PrivateKey:
        spec = self._spec
        if spec.algorithm == "ECDSA":
            # The provider's default curve (P224) is not supported by Go's TLS.
            return tls.PrivateKey(
                f"{name}-key", algorithm="ECDSA", ecdsa_curve=spec.ecdsa_curve,
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=KEY_SECRET_OUTPUTS))
        return tls.PrivateKey(
            f"{name}-key", algorithm="RSA", rsa_bits=spec.rsa_bits,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=KEY_SECRET_OUTPUTS))

    def _issue(self, name: str, common_name: str, ca_key: tls.PrivateKey, ca: tls.SelfSignedCert,
               uses: list[str], dns_names: pulumi.Input[Sequence[str]] | None,
               ip_addresses: pulumi.Input[Sequence[str]] | None) -> IssuedCert:
        key = self._key(name)
        csr = tls.CertRequest(
            f"{name}-csr",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=common_name, organization=self._org),
            # Go ignores the CN: every name and address must be a SAN.
            dns_names=dns_names,
            ip_addresses=ip_addresses,
            opts=pulumi.ResourceOptions(parent=self),
        )
        cert = tls.LocallySignedCert(
            f"{name}-cert",
            cert_request_pem=csr.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem,
            validity_period_hours=self._spec.validity_hours,
            early_renewal_hours=self._spec.early_renewal_hours,
            allowed_uses=uses,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return IssuedCert(
            cert_pem=cert.cert_pem,
            private_key_pem=pulumi.Output.secret(key.private_key_pem),
            not_after=cert.validity_end_time,
        )
