"""The stack's outputs and the client TLS files every command dials the nodes with."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from bkf.errors import UserError
from components.status import Tls

#: what every command needs from `pulumi stack output --json --show-secrets`
REQUIRED = ("nodes", "caCert", "clientCert", "clientKey")


def pulumi_outputs(stack: str | None) -> str:
    if not shutil.which("pulumi"):
        raise UserError("pulumi is not on PATH: install it, or pass --outputs FILE")
    cmd = ["pulumi", "stack", "output", "--json", "--show-secrets", *(["--stack", stack] if stack else [])]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        # Pulumi's own words say what is wrong (no such stack, not logged in, ...)
        lines = [x.strip() for x in r.stderr.splitlines() if x.strip()]
        raise UserError(f"`{' '.join(cmd)}` failed: {lines[-1] if lines else f'exit {r.returncode}'}")
    return r.stdout


def read_outputs(stack: str | None, outputs: str | None, stdin: TextIO | None = None) -> dict[str, Any]:
    """The outputs from --outputs FILE ('-': stdin), else piped stdin, else `pulumi stack output`."""
    stdin = stdin or sys.stdin
    if outputs and outputs != "-":
        try:
            raw, where = Path(outputs).read_text(), outputs
        except OSError as e:
            raise UserError(f"cannot read the stack outputs: {e.strerror}: {outputs}") from None
    elif outputs == "-" or (not stack and not stdin.isatty()):
        raw, where = stdin.read(), "stdin"
        if not raw.strip():
            raise UserError("no stack outputs on stdin: pass --stack STACK or --outputs FILE, or pipe "
                            "`pulumi stack output --json --show-secrets`")
    else:
        raw, where = pulumi_outputs(stack), "pulumi stack output"
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as e:
        raise UserError(f"the stack outputs from {where} are not JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict):
        raise UserError(f"the stack outputs from {where} are not a JSON object")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise UserError(f"the stack outputs from {where} lack {', '.join(missing)}: not a buildkit-farm stack?")
    return data


def need(tool: str, why: str) -> None:
    if not shutil.which(tool):
        raise UserError(f"{why} needs {tool} on PATH")


def client_pems(outputs: dict[str, Any], client: str | None) -> tuple[str, str]:
    """(cert, key) of a client: the default one, or a name of pki.clients."""
    if client:
        certs, keys = outputs.get("clientCerts") or {}, outputs.get("clientKeys") or {}
        if client not in certs or client not in keys:
            known = ", ".join(sorted(certs)) or "none"
            raise UserError(f"no client {client!r} in the stack outputs (clients: {known})")
        cert, key = certs[client], keys[client]
    else:
        cert, key = outputs["clientCert"], outputs["clientKey"]
    if not isinstance(key, str) or "PRIVATE KEY" not in key:
        raise UserError("the client key is missing: use `pulumi stack output --json --show-secrets`")
    return cert, key


@contextmanager
def client_tls(outputs: dict[str, Any], client: str | None) -> Iterator[Tls]:
    """The CA, client cert and key as files (the key 0600) for as long as the caller dials."""
    cert, key = client_pems(outputs, client)
    with tempfile.TemporaryDirectory(prefix="bkf-") as d:
        tls = Tls(Path(d, "ca.pem"), Path(d, "cert.pem"), Path(d, "key.pem"))
        tls.ca.write_text(outputs["caCert"])
        tls.cert.write_text(cert)
        tls.key.touch(0o600)
        tls.key.write_text(key)
        yield tls
