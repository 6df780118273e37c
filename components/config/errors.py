"""Config problems as users read them: `<key path>: <bad value> is not <what is allowed>`.

``format_errors`` is the one place pydantic's errors become these lines: the words for what is
allowed come from the metadata of the type at the error's location (see ``fields.allowed_text``).
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.alias_generators import to_camel

from components.config.fields import ERROR_TYPE, allowed_text
from components.platforms import PLATFORMS

#: what a missing required key is for, by its config key
MISSING_HINTS = {
    "name": "every node needs a name",
    "platform": f"every node needs a platform ({' or '.join(PLATFORMS)})",
    "host": "the ssh backend needs the address of each host",
    "privateKeyPath": "the ssh backend needs the private key Pulumi connects with",
    "aws:region": "set it with `pulumi config set aws:region us-east-1`",
}
#: errors that only follow from another one (a default computed from a bad field)
_CONSEQUENCES = {"default_factory_not_called"}
UNIONS = (Union, types.UnionType)


class ConfigError(Exception):
    """All problems found in the stack config, one per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"invalid buildkit-farm config ({len(self.problems)} problem(s)):\n{lines}")


def key_path(loc: Sequence[str | int], *, given: bool = False) -> str:
    """('nodes', 1, 'platform') -> 'nodes[1].platform'; ``given``: the last part is a key as the user wrote it."""
    out = ""
    prev: str | int | None = None
    for i, part in enumerate(loc):
        if prev == "registries" and isinstance(part, str) and part != "[key]":
            out += f'["{part}"]'  # a registry host holds dots and colons: quote it
        elif isinstance(part, int):
            out += f"[{part}]"
        elif part == "[key]":  # pydantic's marker for a bad mapping key: the key itself is the path
            continue
        else:
            # a default that fails validation is reported under the field's name, not its key
            key = to_camel(part) if "_" in part and not (given and i == len(loc) - 1) else part
            out += f".{key}" if out else key
        prev = part
    return out


def _field(model: type[BaseModel], key: str | int) -> Any:
    return next((f for name, f in model.model_fields.items() if key in (name, f.alias)), None)


def type_at(tp: Any, loc: Sequence[str | int]) -> tuple[Any, list[Any]]:
    """The annotation (and its metadata) at ``loc`` below ``tp``; (None, []) where none is known."""
    meta: list[Any] = []
    i = 0
    while True:
        while get_origin(tp) is Annotated or (get_origin(tp) in UNIONS and type(None) in get_args(tp)):
            if get_origin(tp) is Annotated:
                meta += list(get_args(tp)[1:])
                tp = get_args(tp)[0]
            else:
                tp = next(a for a in get_args(tp) if a is not type(None))
        if i == len(loc):
            return tp, meta
        if isinstance(tp, type) and issubclass(tp, BaseModel) and (f := _field(tp, loc[i])) is not None:
            tp, meta = f.annotation, [f, *f.metadata]
        elif get_origin(tp) is tuple:
            tp, meta = get_args(tp)[0], []
        elif get_origin(tp) is dict:
            key = i + 1 < len(loc) and loc[i + 1] == "[key]"
            tp, meta = get_args(tp)[0 if key else 1], []
            i += key
        else:
            return None, []
        i += 1


def _unknown_key(models: Mapping[str, type[BaseModel]], parent: Any, loc: list[str | int], value: Any) -> str:
    key = str(loc[-1])
    backend = parent.model_fields["backend"].default if "backend" in getattr(parent, "model_fields", {}) else None
    if backend and key in models:
        return f"only used with backend {key} (this stack's backend is {backend})"
    node_models = {b: type_at(m, ("nodes", 0))[0] for b, m in models.items()}
    if parent in node_models.values():
        common = set.intersection(*(set(n.keys()) for n in node_models.values()))
        owners = sorted(b for b, n in node_models.items() if key in n.keys() and key not in common)
        if owners:
            return f"{value!r} is only allowed with backend {' or '.join(owners)}"
    if moved := getattr(parent, "moved_keys", {}).get(key):
        return (f"{value!r}: moved to {moved}, one key for every backend; run `pulumi config set --path {moved} "
                f"{value}`, then `pulumi config rm --path {key_path(loc)}`")
    own = getattr(parent, "provider_keys", ())
    return f"unknown key (allowed: {', '.join(sorted(k for k in parent.keys() if k not in own))})"


def _text(models: Mapping[str, type[BaseModel]], root: type[BaseModel], err: Any, loc: list[str | int]) -> str:
    kind, value = err["type"], err.get("input")
    if kind == ERROR_TYPE:
        return str(err["msg"])
    if kind == "missing":
        hint = MISSING_HINTS.get(str(loc[-1]) if loc else "")
        return f"missing; {hint}" if hint else "missing"
    if kind == "extra_forbidden":
        return _unknown_key(models, type_at(root, loc[:-1])[0], loc, value)
    if kind in ("tuple_type", "list_type"):
        return f"{value!r} is not a list"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{value!r} is not an object"
    tp, meta = type_at(root, loc)
    if tp is None:
        return f"{value!r}: {err['msg']}"
    return f"{value!r} is not {allowed_text(tp, meta)}"


def format_errors(e: ValidationError, models: Mapping[str, type[BaseModel]]) -> list[str]:
    """One line per problem. Errors under the backend union carry the backend (the tag) first."""
    out: list[str] = []
    for err in e.errors():
        if err["type"] in _CONSEQUENCES:
            continue
        if not err["loc"]:  # the union's own error: the value is the config's `backend`
            value = err["input"].get("backend") if isinstance(err["input"], dict) else err["input"]
            line = f"backend: {value!r} {err['msg']}"
        else:
            loc = list(err["loc"][1:])
            path = key_path(loc, given=err["type"] == "extra_forbidden") or "backend"
            line = f"{path}: {_text(models, models[str(err['loc'][0])], err, loc)}"
        if line not in out:
            out.append(line)
    return out
