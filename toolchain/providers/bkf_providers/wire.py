"""Pulumi property values on the wire (google.protobuf.Struct) <-> plain Python values.

The engine encodes special values as objects tagged with a signature key:
secrets, assets, archives, resource references and output values; an unknown
(computed) value is a fixed string. Decoded here:

- a secret becomes ``Secret(value)`` wherever it sits (top level or nested);
- an unknown becomes the ``UNKNOWN`` singleton;
- assets, archives and resource references stay dicts with their signature key,
  so they are echoed back unchanged;
- an output value (only sent to providers that accept them, which these do not)
  becomes its value, ``Secret``-wrapped if secret, or ``UNKNOWN``;
- numbers are floats on the wire; integral ones come back as ``int``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2

# The launcher puts only toolchain/providers on sys.path (python -I); the signatures, Secret and
# UNKNOWN are the repo's one stdlib-only wire module, which this checkout always has beside it.
_REPO = str(Path(__file__).resolve().parents[3])
if _REPO not in sys.path:
    sys.path.append(_REPO)

from components.contracts.wire import (  # noqa: E402  (re-exported: tls, command and tests import them here)
    ARCHIVE_SIG,
    ASSET_SIG,
    OUTPUT_SIG,
    RESOURCE_SIG,
    SECRET_SIG,
    SIG_KEY,
    UNKNOWN,
    UNKNOWN_STRING,
    Secret,
    is_secret,
    known,
    reveal,
    secret,
)

__all__ = ["ARCHIVE_SIG", "ASSET_SIG", "OUTPUT_SIG", "RESOURCE_SIG", "SECRET_SIG", "SIG_KEY", "UNKNOWN",
           "UNKNOWN_STRING", "Secret", "decode_props", "encode_props", "has_unknown", "is_archive", "is_asset",
           "is_secret", "reveal", "secret"]


# ---------------------------------------------------------------------------------------------
# decoding


def decode_value(v: struct_pb2.Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "null_value" or kind is None:
        return None
    if kind == "bool_value":
        return v.bool_value
    if kind == "number_value":
        n = v.number_value
        return int(n) if n.is_integer() and abs(n) < 2**53 else n
    if kind == "string_value":
        return UNKNOWN if v.string_value == UNKNOWN_STRING else v.string_value
    if kind == "list_value":
        return [decode_value(x) for x in v.list_value.values]
    return decode_struct(v.struct_value)


def decode_struct(s: struct_pb2.Struct) -> Any:
    fields = s.fields
    if SIG_KEY in fields:
        sig = fields[SIG_KEY].string_value
        if sig == SECRET_SIG:
            return Secret(decode_value(fields["value"])) if "value" in fields else Secret(None)
        if sig == OUTPUT_SIG:
            value = decode_value(fields["value"]) if "value" in fields else UNKNOWN
            secret = "secret" in fields and fields["secret"].bool_value
            return Secret(value) if secret and value is not UNKNOWN else value
    return {k: decode_value(fields[k]) for k in fields}


def decode_props(s: struct_pb2.Struct | None) -> dict[str, Any]:
    """A resource's property map; null properties are dropped (absent == null)."""
    if s is None:
        return {}
    out = decode_struct(s)
    if not isinstance(out, dict):  # pragma: no cover - top level is never special
        raise ValueError("property map is not an object")
    return {k: v for k, v in out.items() if v is not None}


# ---------------------------------------------------------------------------------------------
# encoding


def encode_value(x: Any) -> struct_pb2.Value:
    v = struct_pb2.Value()
    if x is None:
        v.null_value = struct_pb2.NULL_VALUE
    elif x is UNKNOWN:
        v.string_value = UNKNOWN_STRING
    elif isinstance(x, Secret):
        v.struct_value.fields[SIG_KEY].string_value = SECRET_SIG
        v.struct_value.fields["value"].CopyFrom(encode_value(x.value))
    elif isinstance(x, bool):
        v.bool_value = x
    elif isinstance(x, int | float):
        v.number_value = float(x)
    elif isinstance(x, str):
        v.string_value = x
    elif isinstance(x, Mapping):
        for k, item in x.items():
            v.struct_value.fields[str(k)].CopyFrom(encode_value(item))
    elif isinstance(x, list | tuple):
        v.list_value.values.extend(encode_value(item) for item in x)
    else:
        raise TypeError(f"cannot encode {type(x).__name__} as a property value")
    return v


def encode_props(props: Mapping[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    for k, x in props.items():
        if x is not None:
            s.fields[k].CopyFrom(encode_value(x))
    return s


# ---------------------------------------------------------------------------------------------
# helpers


def has_unknown(x: Any) -> bool:
    """True if the value is or contains an unknown."""
    return not known(x)


def is_asset(x: Any) -> bool:
    return isinstance(x, dict) and x.get(SIG_KEY) == ASSET_SIG


def is_archive(x: Any) -> bool:
    return isinstance(x, dict) and x.get(SIG_KEY) == ARCHIVE_SIG
