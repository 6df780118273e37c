"""The README stays a landing page whose commands work, and the docs say what the program does.

The docs site itself (every page in the nav, every link and anchor inside docs/) is checked by
`mkdocs build --strict` in the lint stage; this covers what lives outside it.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest

from components.config import parse_config
from components.config.errors import ConfigError
from tests.unit.mockrt import ROOT
from tests.unit.test_program import EXPORTS

README = ROOT / "README.md"
#: the quick start's commands, repeated on each backend's page of the site
BACKEND_PAGES = {"aws": ROOT / "docs" / "aws.md", "kubernetes": ROOT / "docs" / "kubernetes.md",
                 "ssh": ROOT / "docs" / "ssh.md"}
#: outputs only some stacks export (aws.cacheRepository, idleStop on AWS)
CONDITIONAL_OUTPUTS = {"cacheRef", "cacheFlags", "ciWakePolicy"}
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
LINK = re.compile(r"(?<!!)\[[^\]]+\]\(([^)\s]+)\)")


def test_the_readme_is_a_landing_page() -> None:
    assert len(README.read_bytes()) < 12 * 1024
    text = README.read_text()
    assert "make farm   #" in text and "make test   #" in text  # the two set-up commands


def test_the_readmes_links_resolve() -> None:
    targets = [t for t in LINK.findall(README.read_text()) if not t.startswith(("http://", "https://", "#"))]
    assert targets
    missing = [t for t in targets if not (ROOT / t.split("#", 1)[0]).exists()]
    assert not missing


def config_blocks(text: str) -> dict[str, list[str]]:
    """backend -> the `pulumi config set` lines of the sh block that sets it."""
    blocks: dict[str, list[str]] = {}
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        lines = [ln for ln in block.splitlines() if ln.startswith("pulumi config set ")]
        backend = next((shlex.split(ln, comments=True)[-1] for ln in lines if " set backend " in ln), None)
        if backend is not None:
            blocks[backend] = lines
    return blocks


def config_from(lines: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What `pulumi config set [--path]` leaves in the stack: the project's keys and provider keys,
    every value a string as the CLI stores it (a command substitution stands for a host key)."""
    raw: dict[str, Any] = {}
    provider: dict[str, Any] = {}
    for ln in lines:
        args = shlex.split(ln, comments=True)[3:]
        path = "--path" in args
        key, value = [a for a in args if a != "--path"]
        value = HOST_KEY if value.startswith("$(ssh-keyscan") else value
        if ":" in key:
            provider[key] = value
            continue
        parts = re.findall(r"[^.\[\]]+|\[\d+\]", key) if path else [key]
        node: Any = raw
        for part, nxt in zip(parts, [*parts[1:], None], strict=True):
            slot: Any = int(part[1:-1]) if part.startswith("[") else part
            if isinstance(node, list):
                node.extend([None] * (slot + 1 - len(node)))
            elif slot not in node:
                node[slot] = None
            if nxt is None:
                node[slot] = value
            elif node[slot] is None:
                node[slot] = [] if nxt.startswith("[") else {}
            node = node[slot]
    return raw, provider


def test_each_quick_start_makes_a_valid_config_and_the_pages_repeat_it() -> None:
    readme = config_blocks(README.read_text())
    assert sorted(readme) == sorted(BACKEND_PAGES)
    for backend, lines in readme.items():
        raw, provider = config_from(lines)
        cfg = parse_config(raw, provider_config=provider)
        assert cfg.backend == backend and sorted(cfg.platforms()) == ["linux/amd64", "linux/arm64"]
        assert config_blocks(BACKEND_PAGES[backend].read_text())[backend] == lines


def test_the_quick_starts_stack_is_not_an_example_stack() -> None:
    # `pulumi stack init <name>` reads a Pulumi.<name>.yaml already in the clone: an example's keys
    # (instanceType, the aws section) would mix into the quick start's config
    pages = [README, *BACKEND_PAGES.values()]
    names = {m for p in pages for m in re.findall(r"pulumi stack init (\S+)", p.read_text())}
    assert len(names) == 1
    assert not (ROOT / f"Pulumi.{names.pop()}.yaml").exists()


def test_a_broken_quick_start_is_caught() -> None:
    lines = config_blocks(README.read_text())["aws"]
    raw, provider = config_from([ln.replace("linux/amd64", "linux/amd") for ln in lines])
    with pytest.raises(ConfigError, match="linux/amd"):
        parse_config(raw, provider_config=provider)


def test_the_outputs_table_names_every_output() -> None:
    ci = (ROOT / "docs" / "ci.md").read_text()
    table = ci.split("## Outputs and how CI uses them", 1)[1].split("\n\n", 2)[1]
    named = {name for row in table.splitlines()[2:] for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert named == EXPORTS | CONDITIONAL_OUTPUTS
    outputs = (ROOT / "components" / "outputs.py").read_text()
    assert all(f'"{name}"' in outputs for name in CONDITIONAL_OUTPUTS)


def test_the_docs_pages_name_no_readme_section() -> None:
    # the README no longer holds the reference: a page pointing at "the README's ..." is stale
    stale = [p.name for p in (ROOT / "docs").rglob("*.md") if re.search(r"(this|the) README'?s?\b", p.read_text())]
    assert not stale


#: configs a user gets wrong, each with the message troubleshooting.md quotes whole
ARM = {"name": "arm64-1", "platform": "linux/arm64"}
REGION = {"aws:region": "eu-west-1"}
MISTAKES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"backend": "aws", "nodes": [ARM]}, {}),  # no allowedCidrs, no region
    ({"backend": "aws", "nodes": [ARM], "allowedCidrs": ["0.0.0.0/0"]}, REGION),
    ({"backend": "aws", "allowedCidrs": ["10.0.0.0/8"],
      "nodes": [{"name": "amd64-1", "platform": "linux/amd"}, {"name": "amd64-1", "platform": "linux/amd64"}]}, REGION),
    ({"backend": "aws", "allowedCidrs": ["10.0.0.0/8"], "nodes": [{**ARM, "instanceType": "c7i.xlarge"}]}, REGION),
    ({"backend": "aws", "allowedCidrs": ["10.0.0.0/8"], "nodes": [{**ARM, "hostPlatform": "linux/amd64"}]}, REGION),
    ({"backend": "ssh", "nodes": [ARM], "volume": {"size": 50}}, {}),  # no host, no key, a misspelt key
    ({"backend": "ssh", "ssh": {"privateKeyPath": "/k"}}, {}),
    ({"backend": "ssh", "nodes": [{**ARM, "host": "h"}], "ssh": {"privateKeyPath": "/k"},
      "idleStop": {"afterMinutes": 30}, "pki": {"validityHours": 720, "earlyRenewalHours": 720}}, {}),
    ({"backend": "kubernetes", "nodes": [ARM], "allowedCidrs": ["10.0.0.0/8"],
      "kubernetes": {"drainTimeoutSeconds": 900}, "idleStop": {"afterMinutes": 30, "command": "systemctl poweroff"}},
     {}),
    ({"backend": "kubernetes", "nodes": [ARM], "allowedCidrs": ["10.0.0.0/8"], "idleStop": {"afterMinutes": 30}}, {}),
]


def test_troubleshooting_quotes_the_config_errors_as_the_code_writes_them() -> None:
    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    problems = []
    for raw, provider in MISTAKES:
        with pytest.raises(ConfigError) as e:
            parse_config(raw, provider_config=provider)
        problems += [ln.removeprefix("  - ") for ln in str(e.value).splitlines()[1:]]
    assert len(problems) >= 15
    assert not [p for p in problems if p not in page]
