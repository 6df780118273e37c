"""The physical floor of a one-line change (issue 23, item 2): the same change built by a warm
local `go build` on this machine, no farm, no container.

The compiler is the bench's own: the Go toolchain of the build stage (toolchain-amd64.tar of
bench/workload.py), unpacked once beside it, so the floor and the farm compile with the same Go.
Modules come from the context's `GOPROXY=file://` directory into a module cache of the floor's
own; GOCACHE is kept beside the unpacked toolchain across runs (as the farm's cache mount is kept
on its node: a fresh one costs a minute of compiling the standard library here, which a warm
floor never pays), and an untimed build warms both first. The same flags and environment as the
Dockerfile's `go build` RUN.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from bench.workload import Workload, one_line_change

GO_PREFIX = "./usr/local/go/"


def goroot(w: Workload, arch: str = "amd64") -> Path:
    """GOROOT unpacked from toolchain-<arch>.tar (cached beside the tar, once per go version)."""
    dest = w.toolchain / f"goroot-{arch}"
    if (dest / ".done").exists():
        return dest
    tmp = w.toolchain / f"goroot-{arch}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    with tarfile.open(w.toolchain / f"toolchain-{arch}.tar") as t:
        members = []
        for m in t.getmembers():
            if m.name.startswith(GO_PREFIX) and (m.isfile() or m.isdir()):
                m.name = m.name.removeprefix(GO_PREFIX)
                members.append(m)
        t.extractall(tmp, members=members, filter="data")
    (tmp / ".done").write_text("unpacked\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


class Floor:
    """A work dir with src/ (edited like a context's), its module and build caches, and the
    unpacked toolchain; ``build()`` is one timed `go build` of the main package."""

    def __init__(self, w: Workload, ctx: Path, workdir: Path) -> None:
        self.w = w
        self.dir = workdir
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        shutil.copytree(ctx / "src", workdir / "src")
        root = goroot(w)
        self.env = {"PATH": f"{root / 'bin'}:/usr/bin:/bin", "HOME": str(workdir / "home"), "GOROOT": str(root),
                    "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOPROXY": f"file://{ctx / 'goproxy'}",
                    "GOSUMDB": "off", "GOFLAGS": "-mod=mod", "GOMODCACHE": str(workdir / "mod"),
                    "GOCACHE": str(w.toolchain / "floor-gocache"), "TMPDIR": str(workdir / "tmp")}
        (workdir / "tmp").mkdir()
        self.go = str(root / "bin" / "go")

    def build(self) -> float:
        """One `go build` as the Dockerfile's RUN runs it; seconds. The binary must come out."""
        app = self.dir / "out" / "app"
        app.unlink(missing_ok=True)
        t0 = time.monotonic()
        r = subprocess.run([self.go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(app), f"./{self.w.pkg}"],
                           cwd=self.dir / "src", env=self.env, capture_output=True, text=True, timeout=1800)
        seconds = time.monotonic() - t0
        if r.returncode != 0 or not app.is_file() or not app.stat().st_size:
            raise RuntimeError(f"local go build failed ({r.returncode}):\n{r.stderr[-3000:]}")
        return seconds

    def change(self, value: str) -> None:
        one_line_change(self.w, self.dir, value)

    def clean(self) -> None:
        # the module cache is read-only as go writes it
        subprocess.run(["chmod", "-R", "u+w", str(self.dir)], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
