"""How the farm names and parents the components it makes.

Pulumi's convention: a child of component ``name`` is ``f"{name}-{role}"`` with
``parent=self``. Stacks created before the farm was one component have those
children at the stack root under their bare role (``pki``, ``amd64-1``): a farm
made with ``adopt_root_resources`` aliases each child to that old place, so an
existing stack previews with no changes (Pulumi carries the alias down to
grandchildren named ``f"{name}-..."``).
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
        aliases = [pulumi.Alias(name=role, parent=pulumi.ROOT_STACK_RESOURCE)] if adopt_root_resources else None
        return f"{name}-{role}", pulumi.ResourceOptions(parent=parent, aliases=aliases, depends_on=depends_on)
    return child
