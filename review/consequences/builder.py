"""Consequences for the buildx builder on the machine that runs `pulumi up`, and for CI's builders."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from review.consequences.context import Context
from review.policy import resources


def builder_lines(ctx: Context) -> list[str]:
    lines = []
    for c in ctx.of_type(resources.LOCAL_COMMAND):
        if "buildkit-farm:index:Builder" not in c.parent_types:
            continue
        m = re.search(r"buildx builder '([^']+)'", str(c.inputs().get("create") or ""))
        name = m.group(1) if m else c.name
        old_eps = _endpoints(c.old)
        new_eps = _endpoints(c.new)
        if c.op == "create":
            lines.append(f"buildx builder {name} is created on the machine that runs `pulumi up`")
        elif c.op == "delete":
            lines.append(f"buildx builder {name} is removed from the machine that runs `pulumi up`")
        else:
            why = []
            if old_eps != new_eps:
                why.append("its nodes change")
            if any(d in c.diffs for d in ("environment",)) or (c.old.get("triggers") or [None])[1:] != \
                    (c.new.get("triggers") or [None])[1:]:
                why.append("its certificates change")
            what = " and ".join(why) or ", ".join(c.diffs)
            ci = "; CI builders made from buildxCreateScript or setupBuildxAction must be recreated too" \
                if old_eps != new_eps else ""
            lines.append(f"buildx builder {name} is recreated on the machine that runs `pulumi up` ({what}){ci}")
        ctx.explained.add(c.urn)
    return lines


def _endpoints(inputs: Mapping[str, Any]) -> list[str]:
    triggers = inputs.get("triggers") or []
    first = triggers[0] if isinstance(triggers, list) and triggers else None
    return [str(x) for x in first] if isinstance(first, list) else []
