"""How the farm names and parents the components it makes.

Pulumi's convention: a child of component ``name`` is ``f"{name}-{role}"`` with
``parent=self``, so two farms can live in one program. The stack program's one
farm is made with ``adopt_root_resources``: its children keep the bare role names
stacks have always had (``pki``, ``amd64-1``, what reviewers read in previews) and
are aliased to their old place at the stack root, so a stack created before the
farm was one component previews with no changes (Pulumi carries the alias down to
the grandchildren).
"""

from __future__ import annotations

from typing import Protocol

import pulumi


class ChildNamer(Protocol):
    """role -> (resource name, options) of a direct child of the farm."""

    def __call__(self, role: str, *, depends_on: list[pulumi.Resource] | None = None
                 ) -> tuple[str, pulumi.ResourceOptions]: ...


def child_namer(parent: pulumi.ComponentResource, name: str, adopt_root_resources: bool) -> ChildNamer:
    def child(role: str, *, depends_on: list[pulumi.Resource] | None = None) -> tuple[str, pulumi.ResourceOptions]:
        if adopt_root_resources:
            return role, pulumi.ResourceOptions(parent=parent, depends_on=depends_on,
                                                aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)])
        return f"{name}-{role}", pulumi.ResourceOptions(parent=parent, depends_on=depends_on)
    return child
