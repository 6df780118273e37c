"""`bkf load`: a farm build into the local Docker engine by way of a registry beside the farm.

`docker buildx build --load` sends the whole image from the node to the client and into the engine
on every build; pushing to a registry next to the farm and `docker pull`ing from it moves only the
layers the engine lacks, which after a small change is the small top layer (docs/registries.md has
the measurement). This module is the pure part: which reference the image goes through, and which
buildx to run; bkf/app.py builds and runs the three commands (build + push, pull, tag).
"""

from __future__ import annotations

import re
import shutil

from bkf.errors import UserError
from components.config.registries import is_registry_host

#: a local image name with an optional tag (no digest: the pull is by the staging tag)
_COMPONENT = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
_IMAGE = re.compile(rf"(?P<name>{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>\w[\w.-]{{0,127}}))?")


def staging_ref(image: str, via: str | None) -> str:
    """The reference the image is pushed to and pulled from: `via`/<image's repository path>:<tag>.

    'app:dev' via '10.0.0.5:5000' -> '10.0.0.5:5000/app:dev'; a registry host in `image` is
    dropped ('registry.example.com/team/app' -> '<via>/team/app:latest').
    """
    problems = []
    if not via:
        problems.append("--via: no registry given (or set BKF_LOAD_REGISTRY): the registry beside the farm, "
                        "host[:port]")
    elif not is_registry_host(via):
        problems.append(f"--via: {via!r} is not a registry host like registry.example.com or 10.0.0.5:5000 "
                        "(host[:port], no scheme or path)")
    first, _, rest = image.partition("/")
    path = rest if rest and ("." in first or ":" in first or first == "localhost") else image
    m = _IMAGE.fullmatch(path)
    if m is None:
        problems.append(f"IMAGE: {image!r} is not an image name like app:dev or team/app "
                        "(lower-case path, optional :tag, no digest)")
    if problems:
        raise UserError("; ".join(problems))
    assert m is not None
    return f"{via}/{m['name']}:{m['tag'] or 'latest'}"


def buildx_argv() -> list[str]:
    """docker-buildx if it is on PATH (the toolchain's), else the docker CLI's plugin."""
    if shutil.which("docker-buildx"):
        return ["docker-buildx"]
    if shutil.which("docker"):
        return ["docker", "buildx"]
    raise UserError("bkf load needs docker-buildx or docker on PATH")
