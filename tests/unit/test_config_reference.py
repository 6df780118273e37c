"""One source for the config reference, and no key that nothing reads."""

from __future__ import annotations

import ast
from pathlib import Path

from pydantic import BaseModel

from components.backends import config_models
from components.config import reference
from components.config.base import ConfigModel
from tests.unit.mockrt import ROOT

CONFIG_PKG = ROOT / "components" / "config"
#: where keys are declared: the shared config package and each backend's config module
DECLARING = {*CONFIG_PKG.glob("*.py"), *(ROOT / "components" / "backends").glob("*/config.py")}
#: consent flags: their whole effect is what validation accepts (allowOpenIngress lets 0.0.0.0/0 in)
CONSENT = {"allow_open_ingress"}


def test_reference_page_and_pulumi_yaml_are_generated_from_the_models() -> None:
    assert reference.main(["--check"]) == 0, "run: python -m components.config.reference --write"


def test_the_generated_table_lists_every_key_of_every_model() -> None:
    table = reference.render_markdown()
    keys = {r.key.rsplit(".", 1)[-1].removeprefix("nodes[]") for r in reference.reference_rows()}
    for model in _config_models():
        for name, f in model.model_fields.items():
            key = f.alias or name
            sub = f.annotation if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel) else None
            assert sub is not None or key in keys or key == "nodes", (model.__name__, key)
    assert table.count("\n") == len(reference.reference_rows()) + 2


def test_a_drifted_reference_page_is_caught(tmp_path: Path) -> None:
    page = reference.REFERENCE_PAGE.read_text()
    edited = page.replace("| `volume.sizeGb` | `100` |", "| `volume.sizeGb` | `200` |")
    assert edited != page
    assert reference.render_reference_page(edited) == page  # regenerating restores the models' truth


def _config_models() -> list[type[ConfigModel]]:
    config_models()  # every backend's config module imported, so its models are subclasses here
    seen: list[type[ConfigModel]] = []
    todo: list[type[ConfigModel]] = [ConfigModel]
    while todo:
        for sub in todo.pop().__subclasses__():
            own = sub.__module__.startswith("components.config") or (
                sub.__module__.startswith("components.backends.") and sub.__module__.endswith(".config"))
            if own and sub not in seen:
                seen.append(sub)
                todo.append(sub)
    return seen


def _is_validator(fn: ast.FunctionDef) -> bool:
    return any("validator" in ast.unparse(d) for d in fn.decorator_list)


def _attributes(tree: ast.AST) -> set[str]:
    return {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}


def test_every_declared_key_reaches_a_consumer() -> None:
    """A key is used when code outside the config package reads it, directly or through a config
    method that such code calls (validators do not count: checking a key is not using it)."""
    outside = [p for p in (ROOT / "components").rglob("*.py") if p not in DECLARING]
    outside.append(ROOT / "__main__.py")
    used: set[str] = set()
    for p in outside:
        used |= _attributes(ast.parse(p.read_text()))
    methods = [fn for p in DECLARING for fn in ast.walk(ast.parse(p.read_text()))
               if isinstance(fn, ast.FunctionDef) and not _is_validator(fn)]
    grown = True
    while grown:  # methods called from outside use what they read
        before = len(used)
        for fn in methods:
            if fn.name in used:
                used |= _attributes(fn)
        grown = len(used) > before
    unused = [(m.__name__, f.alias or name) for m in _config_models() for name, f in m.model_fields.items()
              if name not in used | CONSENT]
    assert unused == [], f"declared but read by nothing: {unused}"


def test_every_key_says_what_it_allows() -> None:
    """The table and the errors read the same metadata: a type without words would show as `str` or `int`."""
    bare = {"str", "int", "bool", "float", "dict", "tuple", "NoneType"}
    for row in reference.reference_rows():
        words = set(row.allowed.replace(",", " ").split())
        assert row.allowed and not words & bare, row
