"""Platforms and CPU architectures: the one place their names and mappings live."""

from __future__ import annotations

import re
from typing import Literal, get_args

#: The platforms a node can build natively.
Platform = Literal["linux/amd64", "linux/arm64"]
PLATFORMS: tuple[Platform, ...] = get_args(Platform)
#: Go / Debian / BuildKit release names of an architecture.
Arch = Literal["amd64", "arm64"]
#: EC2's names (instance types, AMIs).
Ec2Arch = Literal["x86_64", "arm64"]

ARCH_OF: dict[Platform, Arch] = {"linux/amd64": "amd64", "linux/arm64": "arm64"}
EC2_ARCH_OF: dict[Platform, Ec2Arch] = {"linux/amd64": "x86_64", "linux/arm64": "arm64"}
DEFAULT_INSTANCE_TYPE: dict[Platform, str] = {"linux/arm64": "c7g.xlarge", "linux/amd64": "c7i.xlarge"}

# Graviton families: a1, t4g and every "<letters><gen>g<suffix>" family (c7g,
# m7gd, c6gn, x2gd, im4gn, is4gen, hpc7g, g5g ...). Everything else is x86_64.
_GRAVITON_FAMILY_RE = re.compile(r"^(a1|[a-z]+\d+g[a-z]*)$")


def instance_arch(instance_type: str) -> Ec2Arch:
    """The CPU architecture ("arm64" or "x86_64") of an EC2 instance type."""
    family = instance_type.split(".", 1)[0]
    return "arm64" if _GRAVITON_FAMILY_RE.match(family) else "x86_64"
