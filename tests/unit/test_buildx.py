"""buildx command rendering (pure)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from components.buildx import BuilderNode, create_args, driver_opts, render_create_script, setup_buildx_action

NODES = [BuilderNode("amd64-1", "linux/amd64", "tcp://10.0.0.1:1234", "10.0.0.1"),
         BuilderNode("arm64-1", "linux/arm64", "tcp://b.example:1234", "b.example")]


def test_first_node_creates_the_rest_append() -> None:
    calls = create_args("bkf", NODES, "/abs/certs")
    assert calls[0] == ["create", "--name", "bkf", "--driver", "remote", "--node", "amd64-1", "--platform",
                        "linux/amd64", "--driver-opt", driver_opts("10.0.0.1", "/abs/certs"), "tcp://10.0.0.1:1234"]
    assert calls[1][:2] == ["create", "--append"] and calls[1][-1] == "tcp://b.example:1234"
    assert driver_opts("b.example", "/c") == "servername=b.example,cacert=/c/ca.pem,cert=/c/cert.pem,key=/c/key.pem"


def test_no_nodes_is_an_error() -> None:
    with pytest.raises(ValueError):
        create_args("bkf", [], "/c")
    with pytest.raises(ValueError):
        setup_buildx_action([])


def test_single_node_action_has_empty_append() -> None:
    assert setup_buildx_action(NODES[:1])["append"] == ""


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck missing")
def test_create_script_passes_shellcheck(tmp_path: Path) -> None:
    p = tmp_path / "create.sh"
    p.write_text(render_create_script("bkf", NODES))
    subprocess.run(["shellcheck", str(p)], check=True)


def test_create_script_refuses_missing_secrets(tmp_path: Path) -> None:
    r = subprocess.run(["bash", "-c", render_create_script("bkf", NODES)], env={"PATH": "/usr/bin:/bin",
                       "HOME": str(tmp_path)}, capture_output=True, text=True)
    assert r.returncode != 0 and "set BKF_TLS_CA" in r.stderr
    assert not (tmp_path / ".docker").exists()


def test_create_script_writes_0600_cert_files_with_absolute_paths(tmp_path: Path) -> None:
    # a fake buildx records its argv; the real one is exercised in the daemon tier
    fake = tmp_path / "fakebx"
    fake.write_text('#!/bin/bash\necho "$@" >> "$BX_LOG"\n'
                    'if [ "$1" = inspect ]; then printf "Name: amd64-1\\nStatus: running\\nPlatforms: linux/amd64*\\n'
                    'Name: arm64-1\\nStatus: running\\nPlatforms: linux/arm64*\\n"; fi\n')
    fake.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BX_LOG": str(tmp_path / "log"),
           "BKF_TLS_CA": "CA", "BKF_TLS_CERT": "CERT", "BKF_TLS_KEY": "KEY",
           "BUILDX_CONFIG": str(tmp_path / "bx")}
    subprocess.run(["bash", "-c", render_create_script("bkf", NODES, buildx=str(fake))], env=env, check=True,
                   cwd=tmp_path)
    certs = tmp_path / "bx" / "certs" / "bkf"
    for name, content in (("ca.pem", "CA\n"), ("cert.pem", "CERT\n"), ("key.pem", "KEY\n")):
        assert (certs / name).read_text() == content
        assert (certs / name).stat().st_mode & 0o777 == 0o600
    log = (tmp_path / "log").read_text().splitlines()
    assert log[0] == "rm bkf"
    assert f"cacert={certs}/ca.pem" in log[1] and "--append" in log[2]
    assert log[3] == "inspect --bootstrap bkf"
