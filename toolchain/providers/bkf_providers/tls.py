"""Substitute for pulumi-resource-tls 5.5.1: PrivateKey, SelfSignedCert, CertRequest, LocallySignedCert.

Follows the upstream provider (the bridged hashicorp/terraform-provider-tls):
the same property names, defaults, PEM forms, key usages and renewal rules,
with the `cryptography` package instead of Go's crypto/x509.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from .server import Context, Diff, Provider, ProviderError, ResourceType
from .wire import UNKNOWN, has_unknown, reveal

NAME = "tls"
VERSION = "5.5.1"

ALGORITHMS = ("RSA", "ECDSA", "ED25519")
CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P224": ec.SECP224R1, "P256": ec.SECP256R1, "P384": ec.SECP384R1, "P521": ec.SECP521R1,
}

#: allowed_uses values -> x509.KeyUsage argument names
KEY_USAGES = {
    "digital_signature": "digital_signature",
    "content_commitment": "content_commitment",
    "key_encipherment": "key_encipherment",
    "data_encipherment": "data_encipherment",
    "key_agreement": "key_agreement",
    "cert_signing": "key_cert_sign",
    "crl_signing": "crl_sign",
    "encipher_only": "encipher_only",
    "decipher_only": "decipher_only",
}
#: allowed_uses values -> extended key usage OIDs
EXT_KEY_USAGES = {
    "any_extended": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec_end_system": ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec_tunnel": ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec_user": ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoft_server_gated_crypto": ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape_server_gated_crypto": ObjectIdentifier("2.16.840.1.113730.4.1"),
    "microsoft_commercial_code_signing": ObjectIdentifier("1.3.6.1.4.1.311.2.1.22"),
    "microsoft_kernel_code_signing": ObjectIdentifier("1.3.6.1.4.1.311.61.1.1"),
}
USES = tuple(sorted({*KEY_USAGES, *EXT_KEY_USAGES}))

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


# ---------------------------------------------------------------------------------------------
# encodings (Go-compatible: 64-column PEM with a final newline, "type base64\n" SSH keys)


def pem(block_type: str, der: bytes) -> str:
    b64 = base64.b64encode(der).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return f"-----BEGIN {block_type}-----\n" + "".join(f"{line}\n" for line in lines) + f"-----END {block_type}-----\n"


def pem_body(text: bytes) -> bytes:
    """The DER (or other binary) payload of a single-block PEM."""
    body = b"".join(line for line in text.splitlines() if line and not line.startswith(b"-----"))
    return base64.b64decode(body)


def hash_for_state(data: bytes) -> str:
    """Upstream's resource id for keys and CSRs: hex SHA-1."""
    return hashlib.sha1(data).hexdigest()


def generate_key(algorithm: str, rsa_bits: int, curve: str) -> PrivateKey:
    if algorithm == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if algorithm == "ECDSA":
        if curve not in CURVES:
            raise ProviderError(f"invalid ECDSA curve; supported values are: {list(CURVES)}")
        return ec.generate_private_key(CURVES[curve]())
    if algorithm == "ED25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ProviderError(f'Key Algorithm "{algorithm}" is not supported')


def key_algorithm(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "ECDSA"
    return "ED25519"


def ssh_supported(key: PrivateKey | PublicKey) -> bool:
    """x/crypto/ssh (and OpenSSH) have no P-224 keys: upstream leaves the SSH forms empty."""
    return not (isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey)
                and isinstance(key.curve, ec.SECP224R1))


def private_key_outputs(key: PrivateKey) -> dict[str, Any]:
    """Every encoding upstream's PrivateKey computes (private ones not wrapped yet)."""
    pub = key.public_key()
    pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    if isinstance(key, rsa.RSAPrivateKey):
        main_pem = pem("RSA PRIVATE KEY", key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()))
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        main_pem = pem("EC PRIVATE KEY", key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()))
    else:
        main_pem = pem("PRIVATE KEY", pkcs8)
    spki = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    out: dict[str, Any] = {
        "privateKeyPem": main_pem,
        "privateKeyPemPkcs8": pem("PRIVATE KEY", pkcs8),
        "privateKeyOpenssh": "",
        "publicKeyPem": pem("PUBLIC KEY", spki),
        "publicKeyOpenssh": "",
        "publicKeyFingerprintMd5": "",
        "publicKeyFingerprintSha256": "",
        "_id": hash_for_state(spki),
    }
    if ssh_supported(key):
        openssh = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption())
        authorized = pub.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
        blob = base64.b64decode(authorized.split()[1])
        md5 = hashlib.md5(blob).hexdigest()
        sha256 = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
        out.update({
            "privateKeyOpenssh": pem("OPENSSH PRIVATE KEY", pem_body(openssh)),
            "publicKeyOpenssh": authorized + "\n",
            "publicKeyFingerprintMd5": ":".join(md5[i:i + 2] for i in range(0, len(md5), 2)),
            "publicKeyFingerprintSha256": "SHA256:" + sha256,
        })
    return out


_PEM_TYPES = {"RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY"}


def parse_private_key(text: str) -> PrivateKey:
    m = re.search(r"-----BEGIN ([A-Z0-9 ]+)-----", text)
    if m is None:
        raise ProviderError("failed to decode PEM block: no PEM data found")
    if m.group(1) not in _PEM_TYPES:
        raise ProviderError(f"unable to determine parser for PEM preamble: {m.group(1)}")
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as e:
        raise ProviderError(f"failed to parse private key given PEM preamble '{m.group(1)}': {e}") from e
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise ProviderError(f"unsupported private key type: {type(key).__name__}")
    return key


def subject_key_id(pub: PublicKey) -> bytes:
    """SHA-1 of the key as upstream marshals it (RSA: PKCS#1, EC: the point, Ed25519: an OCTET STRING)."""
    if isinstance(pub, rsa.RSAPublicKey):
        data = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        data = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    else:
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        data = bytes([0x04, len(raw)]) + raw
    return hashlib.sha1(data).digest()


def signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    """The digest Go's x509 picks for a signer."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if isinstance(key.curve, ec.SECP384R1):
            return hashes.SHA384()
        if isinstance(key.curve, ec.SECP521R1):
            return hashes.SHA512()
    return hashes.SHA256()


def subject_name(subject: dict[str, Any] | None) -> x509.Name:
    """pkix.Name order: C, ST, L, STREET, PC, O, OU, CN, SERIALNUMBER, then email (empty values skipped)."""
    s = subject or {}
    rdns: list[x509.RelativeDistinguishedName] = []

    def add(oid: ObjectIdentifier, *values: Any) -> None:
        attrs = [x509.NameAttribute(oid, str(v)) for v in values if v not in (None, "")]
        if attrs:
            rdns.append(x509.RelativeDistinguishedName(attrs))

    add(NameOID.COUNTRY_NAME, s.get("country"))
    add(NameOID.STATE_OR_PROVINCE_NAME, s.get("province"))
    add(NameOID.LOCALITY_NAME, s.get("locality"))
    add(NameOID.STREET_ADDRESS, *(s.get("streetAddresses") or []))
    add(NameOID.POSTAL_CODE, s.get("postalCode"))
    add(NameOID.ORGANIZATION_NAME, s.get("organization"))
    add(NameOID.ORGANIZATIONAL_UNIT_NAME, s.get("organizationalUnit"))
    add(NameOID.COMMON_NAME, s.get("commonName"))
    add(NameOID.SERIAL_NUMBER, s.get("serialNumber"))
    add(NameOID.EMAIL_ADDRESS, s.get("emailAddress"))
    return x509.Name(rdns)


def sans(dns_names: list[str] | None, ip_addresses: list[str] | None,
         uris: list[str] | None) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names or []]
    for ip in ip_addresses or []:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError as e:
            raise ProviderError(f"Invalid IP address: Failed to parse {ip!r}") from e
    out += [x509.UniformResourceIdentifier(u) for u in uris or []]
    return out


def rfc3339(t: datetime) -> str:
    """Go's time.RFC3339Nano in the local zone, as upstream writes validity times: trailing zeros of
    the fraction dropped, "Z" for UTC, else the offset (e.g. 2027-02-01T01:00:00+01:00)."""
    local = t.astimezone()
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if local.microsecond:
        text += f".{local.microsecond:06d}".rstrip("0")
    offset = local.strftime("%z")
    return text + ("Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}")


def parse_rfc3339(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def now() -> datetime:
    """The current time (tests replace it)."""
    return datetime.now(UTC)


def create_certificate(inputs: dict[str, Any], subject: x509.Name, san: list[x509.GeneralName],
                       pub: PublicKey, issuer: x509.Name, issuer_skid: bytes | None, signer: PrivateKey,
                       self_signed: bool) -> dict[str, Any]:
    """Upstream's createCertificate: the template its inputs describe, signed; returns the computed outputs."""
    start = now().replace(microsecond=0)
    end = start + timedelta(hours=int(inputs["validityPeriodHours"]))
    serial = 0
    while serial == 0:
        serial = secrets.randbits(128)
    is_ca = bool(inputs.get("isCaCertificate"))
    if is_ca and len(subject) == 0:
        raise ProviderError("Invalid Certificate Subject: Must contain at least one Distinguished Name "
                            "when creating Certificate Authority (CA)")
    max_path = inputs.get("maxPathLength")
    path_length = int(max_path) if is_ca and max_path is not None and int(max_path) > 0 else None

    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(pub)
         .serial_number(serial).not_valid_before(start).not_valid_after(end)
         .add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True))

    uses = [str(u) for u in inputs.get("allowedUses") or []]
    ku = {v: False for v in KEY_USAGES.values()}
    for u in uses:
        if u in KEY_USAGES:
            ku[KEY_USAGES[u]] = True
    if any(ku.values()):
        if not ku["key_agreement"]:  # cryptography insists; Go just sets the bits
            ku["encipher_only"] = ku["decipher_only"] = False
        b = b.add_extension(x509.KeyUsage(**ku), critical=True)
    ekus = [EXT_KEY_USAGES[u] for u in uses if u in EXT_KEY_USAGES]
    if ekus:
        b = b.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=len(subject) == 0)

    skid = subject_key_id(pub) if is_ca or inputs.get("setSubjectKeyId") else None
    if skid is not None:
        b = b.add_extension(x509.SubjectKeyIdentifier(skid), critical=False)
    akid: bytes | None = None
    if self_signed:
        if inputs.get("setAuthorityKeyId"):
            if skid is None:
                raise ProviderError("Invalid Certificate Authority: Could not determine Authority Key Identifier")
            akid = skid
    elif issuer_skid and issuer != subject:  # Go takes the parent's subject key id
        akid = issuer_skid
    if akid is not None:
        b = b.add_extension(x509.AuthorityKeyIdentifier(akid, None, None), critical=False)

    cert = b.sign(signer, signature_hash(signer))
    return {
        "_id": str(serial),
        "certPem": pem("CERTIFICATE", cert.public_bytes(serialization.Encoding.DER)),
        "validityStartTime": rfc3339(start),
        "validityEndTime": rfc3339(end),
        "readyForRenewal": False,
    }


def ready_for_renewal(end: Any, early_renewal_hours: Any) -> bool:
    """Upstream's rule: ready once now >= validity_end_time - early_renewal_hours."""
    if not isinstance(end, str) or not end:
        return False
    hours = int(early_renewal_hours) if isinstance(early_renewal_hours, int | float) else 0
    return now() >= parse_rfc3339(end) - timedelta(hours=hours)


# ---------------------------------------------------------------------------------------------
# resources


def _require(news: dict[str, Any], *names: str) -> list[tuple[str, str]]:
    return [(n, f"Missing required property '{n}'") for n in names if news.get(n) is None]


def _validate_uses(news: dict[str, Any]) -> list[tuple[str, str]]:
    uses = news.get("allowedUses")
    if not isinstance(uses, list):
        return []
    return [("allowedUses", f"value must be one of: {list(USES)}, got: {u!r}")
            for u in reveal(uses) if u is not UNKNOWN and u not in USES]


def _validate_hours(news: dict[str, Any], *names: str) -> list[tuple[str, str]]:
    out = []
    for n in names:
        v = reveal(news.get(n))
        if isinstance(v, int | float) and v < 0:
            out.append((n, f"value must be at least 0, got: {v}"))
    return out


class PrivateKeyResource(ResourceType):
    token = "tls:index/privateKey:PrivateKey"
    inputs = ("algorithm", "ecdsaCurve", "rsaBits")
    replace_on = frozenset(inputs)
    defaults: ClassVar[dict[str, Any]] = {"ecdsaCurve": "P224", "rsaBits": 2048}
    computed = ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh", "publicKeyPem", "publicKeyOpenssh",
                "publicKeyFingerprintMd5", "publicKeyFingerprintSha256")
    secret_outputs = ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh")

    def validate(self, news: dict[str, Any]) -> list[tuple[str, str]]:
        out = _require(news, "algorithm")
        alg, curve = reveal(news.get("algorithm")), reveal(news.get("ecdsaCurve"))
        if alg not in (None, UNKNOWN) and alg not in ALGORITHMS:
            out.append(("algorithm", f"value must be one of: {list(ALGORITHMS)}, got: {alg!r}"))
        if curve not in (None, UNKNOWN) and curve not in CURVES:
            out.append(("ecdsaCurve", f"value must be one of: {list(CURVES)}, got: {curve!r}"))
        return out

    def create(self, ctx: Context, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        key = generate_key(reveal(inputs["algorithm"]), int(reveal(inputs.get("rsaBits", 2048))),
                           reveal(inputs.get("ecdsaCurve", "P224")))
        computed = private_key_outputs(key)
        id_ = computed.pop("_id")
        return id_, {**inputs, **computed}


class _CertResource(ResourceType):
    """Renewal: a cert whose now >= end - earlyRenewalHours is replaced (readyForRenewal) on the next diff."""

    def diff(self, id_: str, olds: dict[str, Any], old_inputs: dict[str, Any], news: dict[str, Any],
             ignore: frozenset[str] = frozenset()) -> Diff:
        d = super().diff(id_, olds, old_inputs, news, ignore)
        hours = news.get("earlyRenewalHours")
        if has_unknown(hours):
            hours = olds.get("earlyRenewalHours")
        if ready_for_renewal(olds.get("validityEndTime"), reveal(hours)):
            d.changes.append("readyForRenewal")
            d.replaces.append("readyForRenewal")
            d.non_input.add("readyForRenewal")
        return d

    def read(self, id_: str, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        if ready_for_renewal(state.get("validityEndTime"), state.get("earlyRenewalHours")):
            return {**state, "readyForRenewal": True}
        return state


CERT_DEFAULTS: dict[str, Any] = {"earlyRenewalHours": 0, "isCaCertificate": False, "setSubjectKeyId": False}


class SelfSignedCertResource(_CertResource):
    token = "tls:index/selfSignedCert:SelfSignedCert"
    inputs = ("privateKeyPem", "subject", "validityPeriodHours", "allowedUses", "dnsNames", "ipAddresses", "uris",
              "earlyRenewalHours", "isCaCertificate", "maxPathLength", "setSubjectKeyId", "setAuthorityKeyId")
    # earlyRenewalHours is updated in place upstream (it only moves the renewal point)
    replace_on = frozenset(inputs) - {"earlyRenewalHours"}
    defaults: ClassVar[dict[str, Any]] = {**CERT_DEFAULTS, "setAuthorityKeyId": False}
    computed = ("certPem", "keyAlgorithm", "validityStartTime", "validityEndTime", "readyForRenewal")
    secret_outputs = ("privateKeyPem",)

    def validate(self, news: dict[str, Any]) -> list[tuple[str, str]]:
        return (_require(news, "privateKeyPem", "validityPeriodHours", "allowedUses") + _validate_uses(news)
                + _validate_hours(news, "validityPeriodHours", "earlyRenewalHours"))

    def create(self, ctx: Context, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        plain = reveal(inputs)
        key = parse_private_key(plain["privateKeyPem"])
        subject = subject_name(plain.get("subject"))
        san = sans(plain.get("dnsNames"), plain.get("ipAddresses"), plain.get("uris"))
        pub = key.public_key()
        computed = create_certificate(plain, subject, san, pub, subject, None, key, self_signed=True)
        computed["keyAlgorithm"] = key_algorithm(key)
        return computed.pop("_id"), {**inputs, **computed}


class CertRequestResource(ResourceType):
    token = "tls:index/certRequest:CertRequest"
    inputs = ("privateKeyPem", "subject", "dnsNames", "ipAddresses", "uris")
    replace_on = frozenset(inputs)
    computed = ("certRequestPem", "keyAlgorithm")
    secret_outputs = ("privateKeyPem",)

    def validate(self, news: dict[str, Any]) -> list[tuple[str, str]]:
        return _require(news, "privateKeyPem")

    def create(self, ctx: Context, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        plain = reveal(inputs)
        key = parse_private_key(plain["privateKeyPem"])
        b = x509.CertificateSigningRequestBuilder().subject_name(subject_name(plain.get("subject")))
        san = sans(plain.get("dnsNames"), plain.get("ipAddresses"), plain.get("uris"))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        der = b.sign(key, signature_hash(key)).public_bytes(serialization.Encoding.DER)
        return hash_for_state(der), {**inputs, "certRequestPem": pem("CERTIFICATE REQUEST", der),
                                     "keyAlgorithm": key_algorithm(key)}


class LocallySignedCertResource(_CertResource):
    token = "tls:index/locallySignedCert:LocallySignedCert"
    inputs = ("certRequestPem", "caPrivateKeyPem", "caCertPem", "validityPeriodHours", "allowedUses",
              "earlyRenewalHours", "isCaCertificate", "maxPathLength", "setSubjectKeyId")
    replace_on = frozenset(inputs) - {"earlyRenewalHours"}
    defaults: ClassVar[dict[str, Any]] = CERT_DEFAULTS
    computed = ("certPem", "caKeyAlgorithm", "validityStartTime", "validityEndTime", "readyForRenewal")
    secret_outputs = ("caPrivateKeyPem",)

    def validate(self, news: dict[str, Any]) -> list[tuple[str, str]]:
        return (_require(news, "certRequestPem", "caPrivateKeyPem", "caCertPem", "validityPeriodHours",
                         "allowedUses")
                + _validate_uses(news) + _validate_hours(news, "validityPeriodHours", "earlyRenewalHours"))

    def create(self, ctx: Context, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        plain = reveal(inputs)
        try:
            csr = x509.load_pem_x509_csr(plain["certRequestPem"].encode())
        except ValueError as e:
            raise ProviderError(f"Failed to parse certificate request PEM: {e}") from e
        ca_key = parse_private_key(plain["caPrivateKeyPem"])
        try:
            ca = x509.load_pem_x509_certificate(plain["caCertPem"].encode())
        except ValueError as e:
            raise ProviderError(f"Failed to parse CA certificate PEM: {e}") from e
        ca_pub = ca.public_key().public_bytes(serialization.Encoding.DER,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
        if ca_pub != ca_key.public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo):
            raise ProviderError("Failed to create certificate: x509: provided PrivateKey doesn't match "
                                "parent's PublicKey")
        try:
            is_ca = ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            ctx.log("Potentially Invalid Certificate Authority: Certificate provided as Authority does not "
                    "appear to be a valid Certificate Authority. The resulting certificate might fail "
                    "certificate validation.", "warning")
        try:
            ca_skid: bytes | None = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            ca_skid = None
        # the CSR's subject and its DNS/IP/URI names (as Go's template takes them)
        try:
            req_san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            san: list[x509.GeneralName] = [
            n for n in req_san if isinstance(n, x509.DNSName | x509.IPAddress | x509.UniformResourceIdentifier)]
        except x509.ExtensionNotFound:
            san = []
        pub = csr.public_key()
        if not isinstance(pub, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            raise ProviderError(f"unsupported public key type in the certificate request: {type(pub).__name__}")
        computed = create_certificate(plain, csr.subject, san, pub, ca.subject, ca_skid, ca_key, self_signed=False)
        computed["caKeyAlgorithm"] = key_algorithm(ca_key)
        return computed.pop("_id"), {**inputs, **computed}


RESOURCES = (PrivateKeyResource(), SelfSignedCertResource(), CertRequestResource(), LocallySignedCertResource())


def make_provider(engine_address: str = "") -> Provider:
    return Provider(NAME, VERSION, RESOURCES, engine_address)
