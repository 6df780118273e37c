"""Pulumi property values in the engine's wire form, decoded to plain Python values.

The engine marks special values inside a property map with a signature key
(sdk/go/common/resource/properties.go): a secret is ``{SIG_KEY: SECRET_SIG, "value": ...}``;
assets, archives, resource references and output values have signatures of their own; a value a
preview does not know yet is one of the sentinel strings. ``decode`` turns the JSON form (what
the policy pack and ``pulumi preview --json`` see) into plain values, ``Secret`` wrappers and the
``UNKNOWN`` singleton; the substitute providers decode the protobuf form into the same values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17"
ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7"
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
#: the unknown a provider sends back (a string-typed one)
UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
#: every placeholder the engine uses for a value a preview does not know (bool, number, string,
#: array, asset, archive, object)
UNKNOWN_SENTINELS = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7", "3eeb2bf0-c639-47a8-9e75-3b44932eb421",
    UNKNOWN_STRING, "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",
    "030794c1-ac77-496b-92df-f27374a8bd58", "e48ece36-62e2-4504-bad9-02848725956a",
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",
})


@dataclass(frozen=True)
class Secret:
    """A value the engine holds as a secret."""

    value: Any


class _Unknown:
    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


#: A value the preview does not know yet (computed during the update).
UNKNOWN = _Unknown()


def decode(wire: Any) -> Any:
    """Engine wire form (JSON) -> plain values, ``Secret`` and ``UNKNOWN``."""
    if isinstance(wire, str) and wire in UNKNOWN_SENTINELS:
        return UNKNOWN
    if isinstance(wire, Mapping):
        if wire.get(SIG_KEY) == SECRET_SIG:
            return Secret(decode(wire.get("value")))
        return {str(k): decode(v) for k, v in wire.items()}
    if isinstance(wire, list | tuple):
        return [decode(v) for v in wire]
    return wire


def reveal(value: Any) -> Any:
    """The value with every ``Secret`` unwrapped, deeply (for reading contents, not secretness)."""
    if isinstance(value, Secret):
        return reveal(value.value)
    if isinstance(value, Mapping):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def _contains(value: Any, hit: Callable[[Any], bool]) -> bool:
    """True if ``hit`` holds for the value or anything inside it (secrets, mappings, lists)."""
    if hit(value):
        return True
    if isinstance(value, Secret):
        return _contains(value.value, hit)
    if isinstance(value, Mapping):
        return any(_contains(v, hit) for v in value.values())
    if isinstance(value, list):
        return any(_contains(v, hit) for v in value)
    return False


def is_secret(value: Any) -> bool:
    """True if the value is or contains a secret."""
    return _contains(value, lambda v: isinstance(v, Secret))


def known(value: Any) -> bool:
    """True if nothing in ``value`` is unknown."""
    return not _contains(value, lambda v: v is UNKNOWN)


def secret(value: Any) -> Any:
    """Wrap as a secret (once); None and UNKNOWN stay as they are."""
    if value is None or value is UNKNOWN or isinstance(value, Secret):
        return value
    return Secret(value)
