"""The shared formats: what one side writes, the other side reads back unchanged."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from components.contracts.payload import heredoc, parse_env, payload_files, render_env
from components.contracts.wire import SECRET_SIG, SIG_KEY, UNKNOWN, UNKNOWN_STRING, Secret, decode, known, reveal


def test_heredocs_read_back_as_written(tmp_path: Path) -> None:
    files = {str(tmp_path / "a.toml"): "x = 1\n[y]\nz = 'q'\n", str(tmp_path / "b.sh"): "#!/bin/sh\necho '$HOME'\n"}
    script = "".join(heredoc(p, c, "0600") for p, c in files.items())
    assert payload_files(script) == {p: c.rstrip("\n") for p, c in files.items()}
    # and bash writes the same bytes
    subprocess.run(["bash", "-c", script], check=True)
    assert {p: Path(p).read_text() for p in files} == files
    assert oct((tmp_path / "a.toml").stat().st_mode & 0o777) == "0o600"


def test_env_reads_back_as_written() -> None:
    env = {"BKF_A": "tcp://x:1234", "BKF_EMPTY": "", "BKF_B": "a=b,c"}
    assert parse_env(render_env("header", env)) == env


def test_env_refuses_what_would_need_quoting() -> None:
    with pytest.raises(ValueError, match="BKF_A"):
        render_env("h", {"BKF_A": "x y"})


def test_wire_values_decode() -> None:
    wire = {"s": {SIG_KEY: SECRET_SIG, "value": {"k": [1, UNKNOWN_STRING]}}, "plain": "v"}
    value = decode(wire)
    assert value == {"s": Secret({"k": [1, UNKNOWN]}), "plain": "v"}
    assert not known(value)
    assert reveal(value) == {"s": {"k": [1, UNKNOWN]}, "plain": "v"}


def test_the_consumers_use_the_one_module() -> None:
    from bkf_providers import wire as provider_wire
    from review.policy import payload as policy_payload
    from review.policy import resources as policy_resources

    assert policy_payload.payload_files is payload_files
    assert policy_resources.Secret is Secret and provider_wire.Secret is Secret
    assert provider_wire.UNKNOWN is UNKNOWN
