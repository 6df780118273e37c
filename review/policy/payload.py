"""What a node carries, decoded: the bootstrap payload (SSH create, EC2 user data) and what it holds.

A payload writes its files with heredocs (``payload_files``, from the one module that also
writes them: components/contracts/payload.py): buildkitd.toml (``payload_toml``,
parsed by ``parse_toml``) and node.env (``payload_env``). A script may also start buildkitd
directly (``buildkitd_lines``); ``flag_values`` reads its flags. The checks that judge these
live in buildkitd.py; review.summary reads payloads with the same functions.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
import shlex
import tomllib
from collections.abc import Sequence
from typing import Any

from components.contracts.payload import parse_env, payload_files
from review.policy.resources import Resource, get

INSTALL_RE = re.compile(r"bkf-node\.sh'?\s+install\b")
_BUILDKITD_LINE_RE = re.compile(r"(?:^|[\s/'\"])buildkitd(?:['\"]?)\s+(?P<args>.*--addr.*)$")


def payload_toml(payload: str) -> str | None:
    for path, body in payload_files(payload).items():
        if path.endswith("/buildkitd.toml"):
            return body
    return None


def payload_env(payload: str) -> dict[str, str]:
    for path, body in payload_files(payload).items():
        if path.endswith("/node.env"):
            return parse_env(body)
    return {}


def user_data_payload(r: Resource) -> str | None:
    """An EC2 instance's (or launch template's) user data as text: base64, gzipped or not."""
    b64 = get(r.props, "userDataBase64")
    if b64 is None:
        plain = get(r.props, "userData")
        return str(plain) if plain is not None else None
    try:
        raw = base64.b64decode(str(b64), validate=True)
    except (binascii.Error, ValueError):
        return ""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError):
            return ""
    return raw.decode("utf-8", "replace")


def parse_toml(text: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return tomllib.loads(text), None
    except tomllib.TOMLDecodeError as e:
        return None, f"buildkitd.toml does not parse ({e})"


def flag_values(args: Sequence[str], flag: str) -> list[str]:
    """Values of ``--flag v`` and ``--flag=v`` in an argv."""
    out = []
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            out.append(args[i + 1])
        elif a.startswith(flag + "="):
            out.append(a[len(flag) + 1:])
    return out


def buildkitd_lines(script: str) -> list[list[str]]:
    """argv of direct `buildkitd ... --addr ...` invocations in a shell script."""
    out = []
    for line in script.splitlines():
        if line.lstrip().startswith("#"):
            continue
        m = _BUILDKITD_LINE_RE.search(line)
        if m:
            try:
                out.append(shlex.split(m.group("args"), comments=True))
            except ValueError:
                out.append(m.group("args").split())
    return out
