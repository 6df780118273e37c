"""Config value types: each one checks a value and says, in words, what it allows.

The same words serve the error a user sees (``volume.sizeGb: 5 is not an integer
from 20 to 16384 GiB``) and the config reference generated for the README, so the
two cannot drift apart.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

#: the one error type the models raise; its message is the whole text after the key path
ERROR_TYPE = "config"


def problem(text: str) -> PydanticCustomError:
    """An error whose message is ``text`` (formatted as ``<key path>: <text>``)."""
    return PydanticCustomError(ERROR_TYPE, "{text}", {"text": text})


@dataclass(frozen=True)
class Allowed:
    """Annotated metadata: ``check`` converts a raw value or raises; ``text`` says what is allowed."""

    text: str
    check: Callable[[Any], Any]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(self)

    def __call__(self, value: Any) -> Any:
        try:
            return self.check(value)
        except (ValueError, TypeError, KeyError):
            raise problem(f"{value!r} is not {self.text}") from None


def _int(value: Any) -> int:
    # YAML/JSON config may hand over "100" for 100; a bool is never an integer here.
    if isinstance(value, str) and re.fullmatch(r"\d+", value):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError
    return value


def integer(lo: int, hi: int, unit: str = "") -> Allowed:
    def check(value: Any) -> int:
        n = _int(value)
        if not lo <= n <= hi:
            raise ValueError
        return n
    return Allowed(f"an integer from {lo} to {hi}{unit}", check)


def one_of(*choices: str | int) -> Allowed:
    def check(value: Any) -> str | int:
        if isinstance(choices[0], int):
            value = _int(value)
        if value not in choices:
            raise ValueError
        return value
    return Allowed(f"one of {', '.join(str(c) for c in choices)}", check)


def boolean() -> Allowed:
    def check(value: Any) -> bool:
        if isinstance(value, str) and value in ("true", "false"):
            return value == "true"
        if not isinstance(value, bool):
            raise TypeError
        return value
    return Allowed("true or false", check)


def matching(pattern: str, text: str) -> Allowed:
    regex = re.compile(pattern)

    def check(value: Any) -> str:
        if not isinstance(value, str) or not regex.match(value):
            raise ValueError
        return value
    return Allowed(text, check)


def text() -> Allowed:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError
        return value
    return Allowed("a string", check)


DNS_NAME = r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def host() -> Allowed:
    regex = re.compile(DNS_NAME)

    def check(value: Any) -> str:
        if not isinstance(value, str) or not (is_ip(value) or regex.match(value)):
            raise ValueError
        return value
    return Allowed("an IP address or DNS name", check)


def cidr() -> Allowed:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError
        try:
            return str(ipaddress.ip_network(value, strict=True))
        except ValueError as e:
            raise problem(f"{value!r} is not a CIDR block like 10.0.0.0/16 ({e})") from None
    return Allowed("a CIDR block like 10.0.0.0/16", check)


#: Kubernetes quantities: `quantity * unit`, to compare requests with limits.
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
_UNITS = {"m": 0.001, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity() -> Allowed:
    return matching(_QUANTITY.pattern, "a Kubernetes quantity like 2, 500m or 4Gi")


def quantity_amount(q: str) -> float:
    m = _QUANTITY.match(q)
    if m is None:
        raise ValueError(q)
    return float(m.group(1)) * _UNITS[m.group(2) or ""]


def _split_port(value: str) -> tuple[str, int | None]:
    """'host:5000' -> ('host', 5000); '[::1]:5000' -> ('::1', 5000); a bare IPv6 needs brackets."""
    if value.startswith("["):
        inner, sep, rest = value[1:].partition("]")
        if not sep or not is_ip(inner) or ":" not in inner or (rest and not rest.startswith(":")):
            raise ValueError(value)
        return inner, (int(rest[1:]) if rest[1:].isdigit() else _bad_port(rest)) if rest else None
    name, sep, port = value.partition(":")
    if not sep:
        return name, None
    if not port.isdigit():
        raise ValueError(value)
    return name, int(port)


def _bad_port(rest: str) -> int:
    raise ValueError(rest)


def registry_host_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address of a registry host like '10.0.0.5:5000', or None for a DNS name."""
    name, _ = _split_port(value)
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def registry_host() -> Allowed:
    regex = re.compile(DNS_NAME)

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError
        name, port = _split_port(value)
        if port is not None and not 1 <= port <= 65535:
            raise ValueError(value)
        if not (regex.match(name) or (is_ip(name) and ":" not in name)) and not value.startswith("["):
            raise ValueError(value)
        return value
    return Allowed("a registry host like registry.example.com or 10.0.0.5:5000 "
                   "(host[:port], no scheme or path)", check)


@dataclass(frozen=True)
class AllowedPem(Allowed):
    """Like Allowed, but the check's own problem() texts reach the user (a PEM is too long to quote)."""

    def __call__(self, value: Any) -> Any:
        try:
            return self.check(value)
        except PydanticCustomError:
            raise
        except (ValueError, TypeError, KeyError):
            raise problem(f"{_short(value)} is not {self.text}") from None


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) > 40:
        return repr(value[:32] + "...")
    return repr(value)


def pem_certificates() -> AllowedPem:
    """One or more PEM X.509 certificates, none expired, and never a private key."""
    from cryptography import x509

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError
        if "PRIVATE KEY" in value:
            raise problem(f"{_short(value)} holds a private key; give only the CA's certificate "
                          "(-----BEGIN CERTIFICATE-----), never a key")
        if "-----BEGIN CERTIFICATE-----" not in value:
            raise ValueError
        try:
            certs = x509.load_pem_x509_certificates(value.encode())
        except ValueError:
            raise problem(f"{_short(value)} is not valid PEM: a certificate block does not parse "
                          "as X.509") from None
        now = datetime.datetime.now(datetime.UTC)
        for c in certs:
            if c.not_valid_after_utc < now:
                raise problem(f"{_short(value)} holds a certificate ({c.subject.rfc4514_string()}) that "
                              f"expired on {c.not_valid_after_utc:%Y-%m-%d}; give a valid CA certificate")
        return value.strip() + "\n"
    return AllowedPem("PEM CA certificates (-----BEGIN CERTIFICATE-----), unexpired, no private key", check)
