"""Consequences of certificate changes: the CA, and the client certificates CI holds."""

from __future__ import annotations

import re

from review.consequences.context import Context
from review.policy import resources
from review.preview import Change

CERT_REQUEST = "tls:index/certRequest:CertRequest"
PKI_LEAVES = (resources.TLS_LOCALLY_SIGNED, resources.TLS_PRIVATE_KEY, CERT_REQUEST)


def ca_lines(ctx: Context) -> list[str]:
    cas = [c for c in ctx.of_type(resources.TLS_SELF_SIGNED) if c.inputs().get("isCaCertificate") is True]
    lines = []
    for ca in cas:
        if ca.op == "replace":
            lines.append("CA replaced: every client cert changes; update CI secrets (caCert, clientCert, clientKey)")
            # everything signed by it follows; the node and builder lines still say what restarts
            pki = ca.urn.split("::")[2].split("$")[0]
            ctx.explained.update(c.urn for c in ctx.changed() if c.type in PKI_LEAVES
                                 and c.urn.split("::")[2].split("$")[0] == pki)
        elif ca.op == "create":
            lines.append("new CA: after `up`, give CI the new caCert, clientCert and clientKey")
        elif ca.op == "delete":
            lines.append("CA deleted: every certificate of this farm stops being trusted")
        elif ca.op == "update":
            lines.append(f"CA updated in place ({', '.join(ca.diffs)}): the certificate itself stays the same")
        ctx.explained.add(ca.urn)
        # the CA's own key goes with it
        ctx.explained.update(c.urn for c in ctx.of_type(resources.TLS_PRIVATE_KEY) if c.name == f"{ca.name}-key")
    return lines


def leaf(c: Change, kind: str) -> str | None:
    m = re.search(rf"-{kind}-(.+)-(?:cert|key|csr)$", c.name)
    return m.group(1) if m else None


def client_lines(ctx: Context) -> list[str]:
    lines = []
    for cert in ctx.of_type(resources.TLS_LOCALLY_SIGNED):
        client = leaf(cert, "client")
        uses = cert.inputs().get("allowedUses") or []
        if client is None and "client_auth" not in uses:
            continue
        client = client or cert.name
        if cert.urn in ctx.explained:  # a CA replacement already said it
            continue
        key_replaced = any(leaf(k, "client") == client and k.op == "replace"
                           for k in ctx.of_type(resources.TLS_PRIVATE_KEY))
        why = f" ({', '.join(cert.replace_keys or cert.diffs)})" if (cert.replace_keys or cert.diffs) else ""
        secrets = "clientCert, clientKey" if key_replaced else "clientCert"
        if cert.op == "replace":
            lines.append(f"client cert {client} replaced{why}: update CI secrets ({secrets}; "
                         f"clientCerts.{client} if {client} is not the first client)")
        elif cert.op == "create":
            lines.append(f"new client cert {client}: hand clientCerts.{client} and clientKeys.{client} to its consumer")
        elif cert.op == "delete":
            lines.append(f"client cert {client} removed: whoever holds it can no longer build")
        else:
            continue
        ctx.explained.add(cert.urn)
        ctx.explained.update(c.urn for c in ctx.changed() if leaf(c, "client") == client)
    return lines
