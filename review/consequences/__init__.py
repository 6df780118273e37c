"""What a preview means for the people who build through the farm, in plain words.

``consequences`` asks each rule in turn (pki.py: the CA and client certificates; nodes.py: nodes
added, removed, restarted or reinstalled; ingress.py: who may reach the build port; builder.py:
the buildx builder), each marking the changes it explained in the shared ``Context``; what no
rule explains is listed too, never dropped.
"""

from __future__ import annotations

from review.consequences.builder import builder_lines
from review.consequences.context import Context
from review.consequences.ingress import ingress_lines
from review.consequences.nodes import node_lines
from review.consequences.pki import PKI_LEAVES, ca_lines, client_lines, leaf
from review.preview import Preview


def consequences(p: Preview) -> tuple[list[str], list[str]]:
    """(consequence lines, lines for changes no rule explains)."""
    ctx = Context(p)
    lines = [*ca_lines(ctx), *client_lines(ctx), *node_lines(ctx), *ingress_lines(ctx), *builder_lines(ctx)]
    # components and the stack have no behaviour of their own; providers are plumbing
    for c in ctx.changed():
        if c.urn in ctx.explained or c.type.startswith(("pulumi:", "buildkit-farm:")):
            continue
        if c.type in PKI_LEAVES and \
                leaf(c, "server") and any(ln.startswith(f"node {leaf(c, 'server')} ") for ln in lines):
            ctx.explained.add(c.urn)  # a server cert that reaches its node: the node line says it
    other = [f"`{c.name}` ({c.short_type}): {c.op}" + (f" ({', '.join(c.diffs)})" if c.diffs else "")
             for c in ctx.changed()
             if c.urn not in ctx.explained and not c.type.startswith(("pulumi:", "buildkit-farm:"))]
    return lines, other
