"""Real registries on the test bridge (local/registry.sh: distribution's `registry`), their state
in one directory; all stopped at the end."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.hosts import ROOT, run

REGISTRY_SH = ROOT / "local" / "registry.sh"


@dataclass(frozen=True)
class Registries:
    dir: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "BKF_REGISTRY_DIR": str(self.dir)}

    @property
    def ca(self) -> Path:
        """The local CA every registry's certificate is signed by (unless it was given another)."""
        return self.dir / "ca.pem"

    def sh(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["bash", str(REGISTRY_SH), *args], env=self.env, check=check)

    def up(self, name: str, addr: str, *args: str) -> None:
        """Registry ``name`` on ``addr`` (``args``: --proxy URL, --ca-dir DIR, --plain)."""
        self.sh("up", name, addr, *args)

    def bundle(self) -> str:
        """A CA bundle (system CAs and the local CA) for clients on this machine: SSL_CERT_FILE."""
        return self.sh("bundle").stdout.strip()

    def log(self, name: str) -> str:
        return (self.dir / name / "registry.log").read_text()

    def get(self, registry: str, path: str, accept: str = "") -> tuple[Any, str]:
        """GET https://<registry>/v2/<path> with the local CA: (json body, Docker-Content-Digest)."""
        argv = ["curl", "-fsS", "-D", "/dev/stderr", "--cacert", str(self.ca), f"https://{registry}/v2/{path}"]
        if accept:
            argv += ["-H", f"Accept: {accept}"]
        r = run(argv)
        digest = re.search(r"(?im)^docker-content-digest: (\S+)", r.stderr)
        return json.loads(r.stdout), digest.group(1) if digest else ""


@contextmanager
def running_registries(d: Path) -> Iterator[Registries]:
    """The registries the block starts under ``d``, all stopped after it (their data stays)."""
    regs = Registries(d)
    try:
        yield regs
    finally:
        regs.sh("down", check=False)
