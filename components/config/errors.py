"""Config problems as users read them: `<key path>: <bad value> is not <what is allowed>`."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError
from pydantic.alias_generators import to_camel

from components.config.fields import ERROR_TYPE

#: what a missing required key is for, by its config key
MISSING_HINTS = {
    "name": "every node needs a name",
    "platform": "every node needs a platform (linux/amd64 or linux/arm64)",
    "host": "the ssh backend needs the address of each host",
    "privateKeyPath": "the ssh backend needs the private key Pulumi connects with",
    "aws:region": "set it with `pulumi config set aws:region us-east-1`",
}


class ConfigError(Exception):
    """All problems found in the stack config, one per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid buildkit-farm config ({len(self.problems)} problem(s)):\n{lines}")


def key_path(loc: Sequence[str | int]) -> str:
    """('nodes', 1, 'platform') -> 'nodes[1].platform'."""
    out = ""
    prev: str | int | None = None
    for part in loc:
        if prev == "registries" and isinstance(part, str) and part != "[key]":
            out += f'["{part}"]'  # a registry host holds dots and colons: quote it
        elif isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":  # pydantic's marker for a bad mapping key: the key itself is the path
            continue
        else:
            # a default that fails validation is reported under the field's name, not its key
            key = to_camel(part) if "_" in part else part
            out += f".{key}" if out else key
        prev = part
    return out


def _generic(kind: str, value: object, msg: str) -> str:
    if kind == "missing":
        return "missing"
    if kind in ("tuple_type", "list_type"):
        return f"{value!r} is not a list"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{value!r} is not an object"
    return f"{value!r}: {msg}"


def format_errors(e: ValidationError, *, union_tagged: bool = True) -> list[str]:
    """One line per problem. Errors under the backend union carry the tag first: drop it."""
    out: list[str] = []
    for err in e.errors():
        loc = list(err["loc"])
        if union_tagged and loc:
            loc = loc[1:]
        path = key_path(loc) or "backend"
        if err["type"] == ERROR_TYPE:
            text = err["msg"]
            if not loc:  # the backend union's own error: the value is the config's `backend`
                value = err["input"].get("backend") if isinstance(err["input"], dict) else err["input"]
                text = f"{value!r} {text}"
        else:
            text = _generic(err["type"], err.get("input"), err["msg"])
            if text == "missing":
                hint = MISSING_HINTS.get(str(loc[-1]) if loc else "")
                text = f"missing; {hint}" if hint else "missing"
        line = f"{path}: {text}"
        if line not in out:
            out.append(line)
    return out
