"""The bootstrap payload's file format: heredocs that write files, and the node.env lines.

A payload (EC2 user data, the SSH backend's remote command) writes each file as
``cat > 'PATH.new' <<'BKF_EOF_<hash>'`` ... then moves it into place, so a half-written file is
never read. ``heredoc`` writes one; ``payload_files`` reads them all back. ``render_env`` and
``parse_env`` are the same pair for node.env (``KEY=value`` lines that bash sources, so values are
restricted to characters that need no quoting).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

#: one written file; `head` and `tail` are the lines around its body (the fixture trimmer keeps them)
HEREDOC_RE = re.compile(
    r"(?P<head>cat > '(?P<path>[^']+)\.new' <<'(?P<marker>BKF_EOF_[0-9a-f]+)'\n)(?P<body>.*?)"
    r"(?P<tail>\n(?P=marker)\n)", re.S)
_ENV_VALUE_RE = re.compile(r"^[A-Za-z0-9_./:@+=,-]*$")


def heredoc(path: str, content: str, mode: str) -> str:
    """Shell that writes `content` to `path` with `mode`, atomically (write, chmod, rename)."""
    marker = "BKF_EOF_" + hashlib.sha256(content.encode()).hexdigest()[:12]
    if marker in content:  # pragma: no cover - astronomically unlikely
        raise ValueError("heredoc marker collides with content")
    return (f"cat > '{path}.new' <<'{marker}'\n{content.rstrip(chr(10))}\n{marker}\n"
            f"chmod {mode} '{path}.new' && mv -f '{path}.new' '{path}'\n")


def payload_files(payload: str) -> dict[str, str]:
    """The files a payload writes (path -> content without its final newline), in payload order."""
    return {m.group("path"): m.group("body") for m in HEREDOC_RE.finditer(payload)}


def render_env(header: str, env: Mapping[str, str]) -> str:
    """node.env: a comment line, then KEY=value lines; a value that would need quoting is refused."""
    lines = [f"# {header}"]
    for key, value in env.items():
        if not _ENV_VALUE_RE.match(value):
            raise ValueError(f"{key}={value!r} has characters that are unsafe in an env file")
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def parse_env(text: str) -> dict[str, str]:
    """KEY=value lines back to a dict (comments and blank lines skipped)."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out
