"""The config reference, generated from the models: the docs site's table (docs/reference/configuration.md)
and Pulumi.yaml's `config:`.

    python -m components.config.reference --write   # rewrite both from the models
    python -m components.config.reference --check   # exit 1 if either has drifted

tests/unit/test_config_reference.py runs the check, so a key added to a model without
regenerating (or a doc edited by hand) fails the tests.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from components.backends import DEFAULT_BACKEND, config_models
from components.config.farm import BACKENDS, Backend, FarmBase
from components.config.fields import allowed_text
from components.config.loading import top_level_keys
from components.config.nodes import NodeSpec
from components.config.registries import RegistrySpec

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_PAGE = ROOT / "docs" / "reference" / "configuration.md"
PULUMI_YAML = ROOT / "Pulumi.yaml"
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"
NAMESPACE = "buildkit-farm"


@dataclass(frozen=True)
class Row:
    key: str
    default: str
    allowed: str
    meaning: str


def _default(f: FieldInfo) -> str:
    if f.default is PydanticUndefined and f.default_factory is None:
        return "required"
    if f.default_factory_takes_validated_data:
        return "—"  # derived from other keys: the meaning says how
    value = f.default_factory() if f.default_factory is not None else f.default  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        value = value.model_dump(by_alias=True, exclude_none=True)
    if value in ("", None, (), {}, []):
        return "—"
    return f"`{json.dumps(value, default=list)}`"


def _model(f: FieldInfo) -> type[BaseModel] | None:
    return f.annotation if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel) else None


def _rows(model: type[BaseModel] | None, prefix: str, skip: tuple[str, ...] = ()) -> Iterator[Row]:
    """One row per key; a section's keys (e.g. buildkit.sha256.amd64) in its own rows."""
    for name, f in model.model_fields.items() if model else ():
        key = f.alias or name
        if key in skip:
            continue
        if (sub := _model(f)) is not None:
            yield from _rows(sub, f"{prefix}{key}.")
        else:
            yield Row(f"{prefix}{key}", _default(f), allowed_text(f.annotation, [f, *f.metadata]), f.description or "")


SECTIONS = ("volume", "buildkit", "pki", "builder")


def _node_model(model: type[FarmBase]) -> type[BaseModel]:
    # nodes: tuple[<Backend>NodeSpec, ...]
    return get_args(model.model_fields["nodes"].annotation)[0]


def reference_rows() -> list[Row]:
    """Every key any backend accepts, in the order a stack file lists them: the shared keys (from the
    default backend's model), node keys, sections, registries, then each backend's own (registry order)."""
    models = config_models()
    default = models[DEFAULT_BACKEND]
    provider_keys = tuple(k for m in models.values() for k in m.provider_keys)
    top = (*SECTIONS, "nodes", "registries", *BACKENDS, *provider_keys)
    rows = list(_rows(default, "", skip=top))
    rows[0] = replace(rows[0], allowed=allowed_text(Backend))
    rows += _rows(NodeSpec, "nodes[].")
    seen = set(NodeSpec.keys())  # a node key two backends share (host) gets one row, from the first
    for backend, model in models.items():
        node = _node_model(model)
        rows += [replace(r, default=f"required ({backend})") if r.default == "required" else r
                 for r in _rows(node, "nodes[].", skip=tuple(seen))]
        seen.update(node.model_fields[n].alias or n for n in node.model_fields)
    for section in SECTIONS:
        rows += _rows(_model(FarmBase.model_fields[section]), f"{section}.")
    registries = FarmBase.model_fields["registries"]
    rows.append(Row("registries", "—", f"an object: {allowed_text(get_args(registries.annotation)[0])} -> its "
                    "settings (below)", registries.description or ""))
    rows += _rows(RegistrySpec, "registries.<host>.")
    for backend, model in models.items():
        for key in model.provider_keys:
            f = next(f for n, f in model.model_fields.items() if (f.alias or n) == key)
            rows.append(Row(key, f"required ({backend})", allowed_text(f.annotation, [f, *f.metadata]),
                            f.description or ""))
    for backend, model in models.items():
        rows += _rows(_model(model.model_fields[backend]), f"{backend}.")
    return rows


def render_markdown() -> str:
    lines = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for r in reference_rows():
        cells = [f"`{r.key}`", r.default, r.allowed.replace("|", "\\|"), r.meaning.replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


_TOP_DESCRIPTIONS = {
    "nodes": "The nodes, in builder order: [{name, platform, ...backend keys}]. Required.",
    "aws": "AWS backend: EC2 placement and images.",
    "kubernetes": "Kubernetes backend: namespace, Services, resources (docs/kubernetes.md).",
    "ssh": "SSH backend: how Pulumi reaches existing hosts.",
    "registries": "Registry host -> {mirrors, ca, http}: how every node reaches that registry.",
}


def pulumi_config() -> dict[str, Any]:
    """Pulumi.yaml's `config:` block: each top-level key's type, default and description."""
    out: dict[str, Any] = {}
    for key in top_level_keys():
        f = next(f for m in config_models().values() for n, f in m.model_fields.items() if (f.alias or n) == key)
        model = _model(f)
        if key == "nodes":
            decl: dict[str, Any] = {"type": "array", "items": {"type": "object"}}
        elif model is not None or key == "registries":
            decl = {"type": "object", "default": {}}
        elif key == "backend":
            decl = {"type": "string", "default": "aws"}
        elif isinstance(f.default, bool):
            decl = {"type": "boolean", "default": f.default}
        else:
            decl = {"type": "array", "items": {"type": "string"}, "default": list(f.default)}
        doc = (model.__doc__ or "").strip().splitlines()[0] if model is not None else f.description
        out[f"{NAMESPACE}:{key}"] = {**decl, "description": _TOP_DESCRIPTIONS.get(key) or doc}
    return out


def render_pulumi_yaml(current: str) -> str:
    head = current.split("\n# Project-level config", 1)[0].split("\nconfig:\n", 1)[0]
    head += ("\n# Project-level config: the engine checks these types; components/config checks every value\n"
             "# (key path, bad value, what is allowed) before any resource exists. Generated from the models by\n"
             "# `python -m components.config.reference --write`; docs/reference/configuration.md too.")
    body = yaml.safe_dump({"config": pulumi_config()}, sort_keys=False, width=110, allow_unicode=True)
    return f"{head}\n{body}"


def render_reference_page(current: str) -> str:
    before, rest = current.split(START, 1)
    _, after = rest.split(END, 1)
    note = ("<!-- generated by `python -m components.config.reference --write` from components/config: "
            "edit the models, not this table -->\n")
    return f"{before}{START}\n{note}{render_markdown()}{END}{after}"


def main(argv: list[str]) -> int:
    targets = {REFERENCE_PAGE: render_reference_page, PULUMI_YAML: render_pulumi_yaml}
    drifted = []
    for path, render in targets.items():
        current = path.read_text()
        wanted = render(current)
        if wanted != current:
            drifted.append(path.name)
            if "--write" in argv:
                path.write_text(wanted)
    if drifted and "--write" not in argv:
        print(f"config reference drifted in {', '.join(drifted)}: run python -m components.config.reference --write",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
