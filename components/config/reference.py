"""The config reference, generated from the models: the README's table and Pulumi.yaml's `config:`.

    python -m components.config.reference --write   # rewrite both from the models
    python -m components.config.reference --check   # exit 1 if either has drifted

tests/unit/test_config_reference.py runs the check, so a key added to a model without
regenerating (or a doc edited by hand) fails the tests.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from components.config.aws import AwsNodeSpec, AwsSpec
from components.config.farm import AwsFarmConfig, FarmBase
from components.config.fields import allowed_text
from components.config.kubernetes import KubernetesNodeSpec, KubernetesSpec
from components.config.nodes import NodeSpec
from components.config.registries import RegistrySpec
from components.config.ssh import SshNodeSpec, SshSpec

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
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


def _rows(model: type[BaseModel], prefix: str, skip: tuple[str, ...] = (), note: str = "") -> Iterator[Row]:
    for name, f in model.model_fields.items():
        key = f.alias or name
        if key in skip:
            continue
        sub = f.annotation if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel) else None
        if sub is not None and sub.model_fields and key not in ("sha256",):
            yield from _rows(sub, f"{prefix}{key}.")
            continue
        if sub is not None:  # small fixed-key objects: one row per key
            yield from _rows(sub, f"{prefix}{key}.")
            continue
        yield Row(f"{prefix}{key}", _default(f), allowed_text(f.annotation, [f, *f.metadata]),
                  f"{note}{f.description or ''}")


def reference_rows() -> list[Row]:
    """Every key any backend accepts, in the order a stack file lists them."""
    # (the aws model: the backend's default is aws)
    rows = list(_rows(AwsFarmConfig, "", skip=("nodes", "volume", "buildkit", "pki", "builder", "registries", "aws",
                                               "aws:region")))
    rows[0] = Row("backend", '`"aws"`', allowed_text(FarmBase.model_fields["backend"].annotation), rows[0].meaning)
    rows += _rows(NodeSpec, "nodes[].")
    for backend, node in (("aws", AwsNodeSpec), ("ssh", SshNodeSpec), ("kubernetes", KubernetesNodeSpec)):
        own = [k for k in node.keys() if k not in NodeSpec.keys()]
        rows += [Row(r.key, f"{r.default} ({backend})" if r.default == "required" else r.default, r.allowed, r.meaning)
                 for r in _rows(node, "nodes[].") if r.key.removeprefix("nodes[].") in own
                 and not (backend == "kubernetes" and r.key == "nodes[].host")]  # host: one row, from ssh
    for section in ("volume", "buildkit", "pki", "builder"):
        model = FarmBase.model_fields[section].annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        rows += _rows(model, f"{section}.")
    registries = FarmBase.model_fields["registries"]
    host_type, _ = get_args(registries.annotation)
    rows.append(Row("registries", "—", f"an object: {allowed_text(host_type)} -> its settings (below)",
                    registries.description or ""))
    rows += _rows(RegistrySpec, "registries.<host>.")
    region = AwsFarmConfig.model_fields["region"]
    rows.append(Row("aws:region", "required (aws)", allowed_text(region.annotation, [region, *region.metadata]),
                    region.description or ""))
    rows += _rows(AwsSpec, "aws.")
    rows += _rows(KubernetesSpec, "kubernetes.")
    rows += _rows(SshSpec, "ssh.")
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
    fields = dict(AwsFarmConfig.model_fields)
    keys = [k for k in AwsFarmConfig.keys() if k not in AwsFarmConfig.provider_keys] + ["kubernetes", "ssh"]
    extra = {"kubernetes": KubernetesSpec, "ssh": SshSpec}
    for key in dict.fromkeys(keys):
        name = next((n for n, f in fields.items() if (f.alias or n) == key), None)
        decl: dict[str, Any] = {}
        if key == "registries":
            decl = {"type": "object", "default": {}, "description": _TOP_DESCRIPTIONS[key]}
        elif key in ("volume", "buildkit", "pki", "builder", "idleStop", "aws", "kubernetes", "ssh"):
            decl = {"type": "object", "default": {}}
            model = extra.get(key) or fields[name].annotation if name else extra[key]
            doc = _TOP_DESCRIPTIONS.get(key) or (model.__doc__ or "").strip().splitlines()[0]
            decl["description"] = doc
        elif key == "nodes":
            decl = {"type": "array", "items": {"type": "object"}, "description": _TOP_DESCRIPTIONS[key]}
        else:
            assert name is not None
            f = fields[name]
            default = FarmBase.model_fields[name].default if name == "allowed_cidrs" else f.default
            if key == "backend":
                decl = {"type": "string", "default": "aws"}
            elif isinstance(default, bool):
                decl = {"type": "boolean", "default": default}
            elif isinstance(default, tuple):
                decl = {"type": "array", "items": {"type": "string"}, "default": list(default)}
            decl["description"] = f.description
        out[f"{NAMESPACE}:{key}"] = decl
    return out


def render_pulumi_yaml(current: str) -> str:
    head = current.split("\n# Project-level config", 1)[0].split("\nconfig:\n", 1)[0]
    head += ("\n# Project-level config: the engine checks these types; components/config checks every value\n"
             "# (key path, bad value, what is allowed) before any resource exists. Generated from the models by\n"
             "# `python -m components.config.reference --write`; the README's Configuration table too.")
    body = yaml.safe_dump({"config": pulumi_config()}, sort_keys=False, width=110, allow_unicode=True)
    return f"{head}\n{body}"


def render_readme(current: str) -> str:
    before, rest = current.split(START, 1)
    _, after = rest.split(END, 1)
    note = ("<!-- generated by `python -m components.config.reference --write` from components/config: "
            "edit the models, not this table -->\n")
    return f"{before}{START}\n{note}{render_markdown()}{END}{after}"


def main(argv: list[str]) -> int:
    targets = {README: render_readme, PULUMI_YAML: render_pulumi_yaml}
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
