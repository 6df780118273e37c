"""A `pulumi preview --json` as data: the changes (old and new inputs), the counts, the policy findings.

``parse`` reads either form the CLI writes: the digest (one JSON object with `steps` and
`changeSummary`), or the engine events streamed with PULUMI_ENABLE_STREAMING_JSON_PREVIEW=true
(one JSON object per line), which also carry the policy pack's findings. The steps of one
resource (a replacement's create and delete parts) merge into one ``Change``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: ops that are parts of a replacement (create-before-delete or delete-before-replace)
REPLACE_PARTS = {"create-replacement": "replace", "delete-replaced": "replace", "replace": "replace",
                 "import-replacement": "replace", "read-replacement": "replace",
                 "remove-pending-replace": "replace", "discard": "delete", "read-discard": "delete"}
_RANK = {"replace": 5, "delete": 4, "create": 3, "update": 2, "import": 1, "read": 1, "refresh": 1, "same": 0}


@dataclass(frozen=True)
class Change:
    """One resource in the preview, with its old and new inputs (empty when absent)."""

    op: str
    urn: str
    type: str
    diffs: tuple[str, ...] = ()
    replace_keys: tuple[str, ...] = ()
    old: Mapping[str, Any] = field(default_factory=dict)
    new: Mapping[str, Any] = field(default_factory=dict)
    parent: str | None = None

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @property
    def parent_types(self) -> tuple[str, ...]:
        parts = self.urn.split("::")
        return tuple(parts[2].split("$")[:-1]) if len(parts) >= 4 else ()

    @property
    def short_type(self) -> str:
        return self.type.rsplit(":", 1)[-1]

    def inputs(self) -> Mapping[str, Any]:
        """The new inputs, or the old ones for a delete."""
        return self.new or self.old


@dataclass(frozen=True)
class PolicyFinding:
    policy: str
    level: str
    message: str
    urn: str | None = None


@dataclass(frozen=True)
class Preview:
    changes: tuple[Change, ...]
    counts: Mapping[str, int]
    policies: tuple[PolicyFinding, ...] = ()
    failed: bool = False


def _top(path: str) -> str:
    """The top-level property of a detailed-diff path ("spec.template[0].x" -> "spec")."""
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def _merge(a: Change, b: Change) -> Change:
    op = a.op if _RANK.get(a.op, 0) >= _RANK.get(b.op, 0) else b.op
    return Change(op=op, urn=a.urn, type=a.type or b.type,
                  diffs=tuple(dict.fromkeys(a.diffs + b.diffs)),
                  replace_keys=tuple(dict.fromkeys(a.replace_keys + b.replace_keys)),
                  old=a.old or b.old, new=a.new or b.new, parent=a.parent or b.parent)


def _change(op: str, urn: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None,
            diffs: Iterable[str], detailed: Mapping[str, Any] | None, replace: Iterable[str]) -> Change:
    op = REPLACE_PARTS.get(op, op)
    old, new = old or {}, new or {}
    detailed = detailed or {}
    keys = [*diffs, *detailed.keys()]
    replace_keys = [*replace, *(k for k, v in detailed.items()
                                if isinstance(v, Mapping) and str(v.get("kind") or v.get("diffKind") or "")
                                .endswith("-replace"))]
    return Change(op=op, urn=urn, type=str(new.get("type") or old.get("type") or urn.split("::")[2].split("$")[-1]),
                  diffs=tuple(dict.fromkeys(_top(k) for k in keys)),
                  replace_keys=tuple(dict.fromkeys(_top(k) for k in replace_keys)),
                  old=old.get("inputs") or {}, new=new.get("inputs") or {},
                  parent=new.get("parent") or old.get("parent"))


def parse(text: str) -> Preview:
    """A preview from `pulumi preview --json` output (digest or streamed engine events)."""
    text = text.strip()
    if not text:
        raise ValueError("empty input: expected the output of `pulumi preview --json`")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None
    if isinstance(doc, Mapping) and "steps" in doc:
        return _parse_digest(doc)
    events = [doc] if isinstance(doc, Mapping) else [json.loads(line) for line in text.splitlines() if line.strip()]
    return _parse_events(events)


def _collect(changes: Iterable[Change]) -> tuple[Change, ...]:
    by_urn: dict[str, Change] = {}
    for c in changes:
        by_urn[c.urn] = _merge(by_urn[c.urn], c) if c.urn in by_urn else c
    return tuple(by_urn.values())


def _parse_digest(doc: Mapping[str, Any]) -> Preview:
    changes = [_change(str(s.get("op")), str(s.get("urn")), s.get("oldState"), s.get("newState"),
                       s.get("diffReasons") or [], s.get("detailedDiff"), s.get("replaceReasons") or [])
               for s in doc.get("steps") or []]
    counts = dict(doc.get("changeSummary") or {})
    failed = any(d.get("severity") == "error" for d in doc.get("diagnostics") or [] if isinstance(d, Mapping))
    return Preview(_collect(changes), counts or _count(changes), (), failed)


def _parse_events(events: Sequence[Mapping[str, Any]]) -> Preview:
    changes: list[Change] = []
    policies: list[PolicyFinding] = []
    counts: dict[str, int] = {}
    failed = False
    for e in events:
        if "resourcePreEvent" in e:
            m = e["resourcePreEvent"].get("metadata") or {}
            changes.append(_change(str(m.get("op")), str(m.get("urn")), m.get("old"), m.get("new"),
                                   m.get("diffs") or [], m.get("detailedDiff"), []))
        elif "policyEvent" in e:
            p = e["policyEvent"]
            lines = [ln for ln in str(p.get("message") or "").splitlines() if ln.strip()]
            policies.append(PolicyFinding(policy=str(p.get("policyName")), level=str(p.get("enforcementLevel")),
                                          message=" ".join(lines[1:] or lines), urn=p.get("resourceUrn") or None))
        elif "summaryEvent" in e:
            counts = dict(e["summaryEvent"].get("resourceChanges") or {})
            failed = failed or e["summaryEvent"].get("result") not in (None, "succeeded")
        elif "diagnosticEvent" in e and e["diagnosticEvent"].get("severity") == "error":
            failed = True
    collected = _collect(changes)
    return Preview(collected, counts or _count(collected), tuple(policies), failed)


def _count(changes: Iterable[Change]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in changes:
        out[c.op] = out.get(c.op, 0) + 1
    return out
