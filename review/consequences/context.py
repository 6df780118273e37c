"""What the consequence rules share: the preview, and the changes already explained."""

from __future__ import annotations

from dataclasses import dataclass, field

from review.preview import Change, Preview


@dataclass
class Context:
    p: Preview
    explained: set[str] = field(default_factory=set)

    def changed(self) -> list[Change]:
        return [c for c in self.p.changes if c.op != "same"]

    def of_type(self, *types: str) -> list[Change]:
        return [c for c in self.changed() if c.type in types]

    def children(self, parent_urn: str) -> list[Change]:
        return [c for c in self.p.changes if c.parent == parent_urn]
