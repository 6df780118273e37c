"""Config value types on stock pydantic, each carrying in its metadata the words for what it allows.

The same words serve the error a user sees (``volume.sizeGb: 5 is not an integer from 20 to
16384 GiB``, composed by ``errors.format_errors``) and the config reference page, so the
two cannot drift apart.
"""

from __future__ import annotations

import ipaddress
import re
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, Strict
from pydantic_core import PydanticCustomError

#: the error type of rules whose message is the whole text after the key path
ERROR_TYPE = "config"


def problem(text: str) -> PydanticCustomError:
    """An error whose message is ``text`` (formatted as ``<key path>: <text>``)."""
    return PydanticCustomError(ERROR_TYPE, "{text}", {"text": text})


def allows(text: str) -> Any:
    """Field metadata: what a value may be, in words."""
    return Field(json_schema_extra={"allowed": text})


def integer(lo: int, hi: int, unit: str = "") -> Any:
    return Field(ge=lo, le=hi, json_schema_extra={"allowed": f"an integer from {lo} to {hi}{unit}"})


def matching(pattern: str, text: str) -> Any:
    return Field(pattern=pattern, json_schema_extra={"allowed": text})


def digits(value: Any) -> Any:
    """'4096' -> 4096, for integer choices (pydantic reads a Literal strictly)."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


def _whole_number(value: Any) -> Any:
    # YAML/JSON config may hand over "100" for 100; a bool, a float or " +1_0 " is never an integer here
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        raise ValueError(value)
    return value


def _true_false(value: Any) -> Any:
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


Int = Annotated[int, BeforeValidator(_whole_number)]
Bool = Annotated[bool, BeforeValidator(_true_false), Strict(), allows("true or false")]
Text = Annotated[str, allows("a string")]

DNS_NAME = r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _host(value: str) -> str:
    if not (is_ip(value) or re.match(DNS_NAME, value)):
        raise ValueError(value)
    return value


def _cidr(value: str) -> str:
    return str(ipaddress.ip_network(value, strict=True))


Host = Annotated[str, AfterValidator(_host), allows("an IP address or DNS name")]
Cidr = Annotated[str, AfterValidator(_cidr), allows("a CIDR block like 10.0.0.0/16")]

#: Kubernetes quantities: `quantity * unit`, to compare requests with limits.
_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
_UNITS = {"m": 0.001, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
Quantity = Annotated[str, matching(_QUANTITY.pattern, "a Kubernetes quantity like 2, 500m or 4Gi")]


def quantity_amount(q: str) -> float:
    m = _QUANTITY.match(q)
    if m is None:
        raise ValueError(q)
    return float(m.group(1)) * _UNITS[m.group(2) or ""]


def allowed_text(annotation: Any, metadata: list[Any] | None = None) -> str:
    """What a type allows, in words: its ``allowed`` metadata, or what its shape says."""
    for m in metadata or []:
        extra = getattr(m, "json_schema_extra", None)
        if isinstance(extra, dict) and "allowed" in extra:
            return str(extra["allowed"])
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *meta = get_args(annotation)
        return allowed_text(base, [*(metadata or []), *meta])
    if origin in (Union, types.UnionType):
        parts = [a for a in get_args(annotation) if a is not type(None)]
        text = " or ".join(allowed_text(p) for p in parts)
        return f"{text}, or unset" if len(parts) < len(get_args(annotation)) else text
    if origin is tuple:
        return f"a list, each {allowed_text(get_args(annotation)[0])}"
    if origin is dict:
        k, v = get_args(annotation)
        return f"an object: {allowed_text(k)} -> {allowed_text(v)}"
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "an object"
    return getattr(annotation, "__name__", str(annotation))
