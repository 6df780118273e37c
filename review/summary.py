"""A pull-request comment from `pulumi preview --json`: what the change means for people who build.

    pulumi preview --json > preview.json && python -m review.summary preview.json
    pulumi preview --json | python -m review.summary

Reads either form the CLI writes: the digest of `pulumi preview --json` (one JSON object with
`steps` and `changeSummary`), or the engine events it streams with
PULUMI_ENABLE_STREAMING_JSON_PREVIEW=true (one JSON object per line), which also carries the
policy pack's findings (the digest leaves policy events out). Prints Markdown: the counts by
operation, one line per consequence in plain words, the changes no rule explains, then the
policy findings. Pure functions over the parsed JSON; no Pulumi needed.
"""

# Where things are: review/preview.py reads both JSON forms into a Preview; review/consequences/
# says what the changes mean; this module renders the Markdown and is the command.

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from review.consequences import consequences
from review.preview import Preview, parse

__all__ = ["OPS", "Preview", "consequences", "counts_line", "main", "parse", "render"]

#: op -> (symbol, words), in the order the counts are printed
OPS: dict[str, tuple[str, str]] = {
    "create": ("+", "to create"),
    "update": ("~", "to update"),
    "replace": ("+-", "to replace"),
    "delete": ("-", "to delete"),
    "import": ("=", "to import"),
    "read": (">", "to read"),
    "refresh": ("~", "to refresh"),
    "same": (" ", "unchanged"),
}


def counts_line(counts: Mapping[str, int]) -> str:
    parts = [f"{counts[op]} {words}" for op, (_, words) in OPS.items() if counts.get(op)]
    parts += [f"{v} {k}" for k, v in counts.items() if k not in OPS and v]
    return ", ".join(parts) or "no resources"


def render(p: Preview, title: str = "Infrastructure preview") -> str:
    lines = [f"### {title}", ""]
    if p.failed:
        lines += ["**The preview failed** (see the policy findings below and the job log).", ""]
    lines += [f"**{counts_line(p.counts)}**", "", "| operation | resources |", "|---|---:|"]
    lines += [f"| `{sym}` {op} | {p.counts[op]} |" for op, (sym, _) in OPS.items() if p.counts.get(op)]
    lines += [f"| {op} | {n} |" for op, n in p.counts.items() if op not in OPS and n]
    found, other = consequences(p)
    lines.append("")
    if found:
        lines += ["**What it means**", "", *(f"- {line}" for line in found), ""]
    elif not other:
        lines += ["Nothing changes for the people who build through the farm.", ""]
    if other:
        lines += ["**Other changes**", "", *(f"- {line}" for line in other), ""]
    if p.policies:
        lines += ["**Policies**", ""]
        order = {"mandatory": 0, "remediate": 1, "advisory": 2}
        for f in sorted(p.policies, key=lambda f: (order.get(f.level, 3), f.policy, f.message)):
            mark = "❌" if f.level == "mandatory" else "⚠️"
            where = f" ({f.urn.rsplit('::', 1)[-1]})" if f.urn else ""
            lines.append(f"- {mark} {f.level} `{f.policy}`{where}: {f.message}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        text = Path(args[0]).read_text() if args and args[0] != "-" else sys.stdin.read()
    except OSError as e:
        print(f"review.summary: cannot read the preview: {e.strerror}: {args[0]}", file=sys.stderr)
        return 2
    try:
        preview = parse(text)
    except (ValueError, json.JSONDecodeError) as e:
        print(f"review.summary: cannot read the preview: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(render(preview))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
