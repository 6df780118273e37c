"""Trim real `pulumi preview --json` output into small test fixtures (tests/unit/fixtures/previews).

    python -m tests.support.previews < preview.json > tests/unit/fixtures/previews/NAME.json

Keeps what review.summary reads (ops, URNs, diffs, parents, inputs, policy events, counts) and
drops the rest (stack config, stack traces, outputs, timings). Long values keep their identity
but not their bytes: a PEM body and each file a bootstrap payload writes (except the small
node.env) become `sha256:<16 hex>`, so that equal stays equal and different stays different.
Secrets are already "[secret]" in preview output; the trimmed text is checked for private keys.
The e2e tier checks that the summary of a trimmed preview equals the summary of the original.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from typing import Any

from components.contracts.payload import HEREDOC_RE

_PEM_RE = re.compile(r"(-----BEGIN ([A-Z0-9 ]+)-----\n)(.*?)(\n-----END \2-----)", re.S)
_STATE_KEYS = ("type", "urn", "parent", "inputs")
_STEP_KEYS = ("op", "urn", "diffReasons", "replaceReasons", "detailedDiff", "keys")
_META_KEYS = ("op", "urn", "type", "diffs", "keys", "detailedDiff", "logical")


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def trim_string(s: str) -> str:
    def heredoc(m: re.Match[str]) -> str:
        body = m.group("body") if m.group("path").endswith("/node.env") else _digest(m.group("body"))
        return m.group("head") + body + m.group("tail")

    s = HEREDOC_RE.sub(heredoc, s)
    return _PEM_RE.sub(lambda m: m.group(1) + _digest(m.group(3)) + m.group(4), s)


def trim_value(v: Any) -> Any:
    if isinstance(v, str):
        return trim_string(v)
    if isinstance(v, dict):
        return {k: trim_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [trim_value(x) for x in v]
    return v


def _state(st: Any) -> Any:
    if not isinstance(st, dict):
        return st
    return {k: trim_value(st[k]) for k in _STATE_KEYS if k in st}


def trim_digest(doc: dict[str, Any]) -> dict[str, Any]:
    steps = []
    for s in doc.get("steps") or []:
        t = {k: s[k] for k in _STEP_KEYS if k in s}
        for k in ("oldState", "newState"):
            if s.get(k):
                t[k] = _state(s[k])
        steps.append(t)
    out: dict[str, Any] = {"steps": steps, "changeSummary": doc.get("changeSummary")}
    if doc.get("diagnostics"):
        out["diagnostics"] = [{"severity": d.get("severity"), "message": trim_string(str(d.get("message", "")))[:500]}
                              for d in doc["diagnostics"] if d.get("severity") in ("error", "warning")]
    return out


def trim_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for e in events:
        if "resourcePreEvent" in e:
            m = e["resourcePreEvent"].get("metadata") or {}
            t = {k: m[k] for k in _META_KEYS if k in m}
            for k in ("old", "new"):
                if m.get(k):
                    t[k] = _state(m[k])
            out.append({"resourcePreEvent": {"metadata": t}})
        elif "policyEvent" in e:
            keep: tuple[str, ...] = ("resourceUrn", "message", "policyName", "policyPackName", "enforcementLevel")
            out.append({"policyEvent": {k: e["policyEvent"][k] for k in keep if k in e["policyEvent"]}})
        elif "summaryEvent" in e:
            keep = ("resourceChanges", "result", "isPreview")
            out.append({"summaryEvent": {k: e["summaryEvent"][k] for k in keep if k in e["summaryEvent"]}})
        elif "diagnosticEvent" in e and e["diagnosticEvent"].get("severity") == "error":
            d = e["diagnosticEvent"]
            out.append({"diagnosticEvent": {"severity": "error", "message": trim_string(str(d.get("message")))[:500]}})
    return out


def trim(text: str) -> str:
    """Trimmed fixture text for either form of `pulumi preview --json` output."""
    text = text.strip()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and "steps" in doc:
        out = json.dumps(trim_digest(doc), indent=1, sort_keys=True) + "\n"
    else:
        events = [doc] if isinstance(doc, dict) else [json.loads(line) for line in text.splitlines() if line.strip()]
        out = "".join(json.dumps(e, sort_keys=True) + "\n" for e in trim_events(events))
    if re.search(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----\n(?!sha256:)", out):
        raise ValueError("a private key survived trimming")
    return out


if __name__ == "__main__":
    sys.stdout.write(trim(sys.stdin.read()))
