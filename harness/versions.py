"""toolchain/versions.env as a dict (the versions this machine's toolchain is built from)."""

from __future__ import annotations

from pathlib import Path

VERSIONS_ENV = Path(__file__).resolve().parents[1] / "toolchain" / "versions.env"


def versions_env() -> dict[str, str]:
    """NAME -> value of the file's plain NAME=value lines (bash sources it; comments skipped)."""
    out = {}
    for line in VERSIONS_ENV.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out
