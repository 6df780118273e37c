"""The pinned-by-hash inputs of the toolchain, read as text (docs/toolchain.md, "Pins and hashes").

Python: each hand-edited requirements ``.in`` file has a generated ``.txt`` lock
(``toolchain/lock.sh python``) that pins every package with the sha256 of its files. Go: each
wrapper module the bootstrap builds from has a committed ``go.mod`` and ``go.sum``
(``toolchain/lock.sh go``). The functions here are pure (text in, findings out); the tests in
tests/toolchain apply them to the committed files, so a lock that drifted from its input or from
versions.env fails ``make test``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def normalize(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Locked:
    """One package of a lock: its exact version and the sha256 of each of its files."""

    version: str
    hashes: frozenset[str]


def _logical_lines(text: str) -> list[str]:
    # pip's requirement-file syntax: a trailing backslash continues the line; # starts a comment
    out: list[str] = []
    for line in text.replace("\\\n", " ").splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            out.append(line)
    return out


_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*(?P<version>[^\s;]+)(?P<rest>.*)$")


def parse_lock(text: str) -> tuple[dict[str, Locked], list[str]]:
    """The packages of a generated lock, and a line per entry that is not `name==version` with at
    least one sha256 hash (what `pip install --require-hashes` would refuse)."""
    packages: dict[str, Locked] = {}
    problems: list[str] = []
    for line in _logical_lines(text):
        m = _PIN.match(line)
        if not m:
            problems.append(f"not an exact pin: {line.split()[0]}")
            continue
        name = normalize(m["name"])
        hashes = frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})\b", m["rest"]))
        if not hashes:
            problems.append(f"{name}=={m['version']}: no sha256 hash")
        if name in packages:
            problems.append(f"{name}: listed twice")
        packages[name] = Locked(m["version"], hashes)
    return packages, problems


def parse_pins(text: str) -> dict[str, str]:
    """The exact pins (name==version) of a hand-edited .in file; -r/-c lines are left out."""
    pins: dict[str, str] = {}
    for line in _logical_lines(text):
        m = _PIN.match(line)
        if m:
            pins[normalize(m["name"])] = m["version"]
    return pins


def lock_problems(in_text: str, lock_text: str) -> list[str]:
    """Why a lock does not match its input: an entry pip would refuse, or a pin of the input that
    the lock has at another version (or not at all), i.e. an input edited without relocking."""
    locked, problems = parse_lock(lock_text)
    for name, version in parse_pins(in_text).items():
        have = locked.get(name)
        if have is None:
            problems.append(f"{name}=={version} is pinned in the input but missing from the lock")
        elif have.version != version:
            problems.append(f"{name} is pinned =={version} in the input but locked at {have.version}")
    return problems


def subset_problems(base_text: str, wider_text: str) -> list[str]:
    """Why a wider lock (the dev venv's) does not hold every package of a base lock (the runtime's)
    at the same version with the same hashes."""
    base, _ = parse_lock(base_text)
    wider, _ = parse_lock(wider_text)
    problems: list[str] = []
    for name, pin in sorted(base.items()):
        other = wider.get(name)
        if other is None:
            problems.append(f"{name}: missing")
        elif other != pin:
            problems.append(f"{name}: {other.version} (hashes {'equal' if other.hashes == pin.hashes else 'differ'}),"
                            f" not {pin.version}")
    return problems


def gomod_requires(text: str) -> dict[str, str]:
    """The require directives of a go.mod (module path -> version), single-line or in blocks."""
    requires: dict[str, str] = {}
    for operand in _directives(text, "require"):
        path, version = operand.split()[:2]
        requires[path] = version
    return requires


def _directives(text: str, verb: str) -> list[str]:
    # the operands of a go.mod verb, single-line or in a block, comments left out
    out: list[str] = []
    block = False
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if block:
            if line == ")":
                block = False
            elif line:
                out.append(line)
        elif line == f"{verb} (":
            block = True
        elif line.startswith(f"{verb} "):
            out.append(line[len(verb):].strip())
    return out


def gomod_replaces(text: str) -> dict[str, tuple[str, str]]:
    """The replace directives of a go.mod with a module version on the right: "path" or
    "path@version" (what is replaced) -> (replacement path, replacement version)."""
    replaces: dict[str, tuple[str, str]] = {}
    for operand in _directives(text, "replace"):
        old, new = (side.split() for side in operand.split("=>"))
        if len(new) == 2:
            replaces["@".join(old)] = (new[0], new[1])
    return replaces


def sum_coverage_problems(gomod: str, gosum: str) -> list[str]:
    """The required modules whose content (after replace directives) has no hash in go.sum, for its
    zip or for its go.mod: `go build -mod=readonly` would stop there, or a changed module pass."""
    sums = gosum_entries(gosum)
    replaces = gomod_replaces(gomod)
    problems: list[str] = []
    for path, version in gomod_requires(gomod).items():
        effective = replaces.get(f"{path}@{version}") or replaces.get(path) or (path, version)
        if effective not in sums or (effective[0], f"{effective[1]}/go.mod") not in sums:
            problems.append(f"{path} {version}" + (f" => {' '.join(effective)}" if effective[0] != path or
                                                    effective[1] != version else ""))
    return problems


def gosum_entries(text: str) -> set[tuple[str, str]]:
    """The (module path, version) pairs of a go.sum; a version ending in /go.mod is the hash of
    the module's go.mod only, without it the hash of the module's whole content (its zip)."""
    entries: set[tuple[str, str]] = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].startswith("h1:"):
            entries.add((parts[0], parts[1]))
    return entries
