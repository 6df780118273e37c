"""buildx command rendering (pure)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from components.builder.scripts import BuilderNode, create_args, driver_opts, render_create_script, setup_buildx_action

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


def test_create_script_passes_shellcheck(tmp_path: Path) -> None:
    assert shutil.which("shellcheck"), "shellcheck missing: run toolchain/bootstrap.sh"
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
                    'case "$*" in\n'
                    '  "inspect --bootstrap probe-amd64-1") echo "Platforms: linux/amd64, linux/386";;\n'
                    '  "inspect --bootstrap probe-arm64-1") echo "Platforms: linux/arm64";;\n'
                    'esac\n')
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
    # preflight first (each node alone, nothing pinned), then the real builder
    assert log[0].startswith("create --name probe-amd64-1 --driver remote --driver-opt servername=10.0.0.1,")
    assert log[1] == "inspect --bootstrap probe-amd64-1"
    assert log[3] == "inspect --bootstrap probe-arm64-1"
    assert log[4] == "rm bkf"
    assert f"cacert={certs}/ca.pem" in log[5] and "--platform linux/amd64" in log[5]
    assert "--append" in log[6] and "--platform linux/arm64" in log[6]
    assert log[7] == "inspect --bootstrap bkf"


def test_create_script_stops_on_a_wrong_platform_before_touching_the_builder(tmp_path: Path) -> None:
    fake = tmp_path / "fakebx"
    fake.write_text('#!/bin/bash\necho "$@" >> "$BX_LOG"\n'
                    '[ "$1 $2" = "inspect --bootstrap" ] && echo "Platforms: linux/amd64, linux/arm64"\nexit 0\n')
    fake.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BX_LOG": str(tmp_path / "log"),
           "BKF_TLS_CA": "CA", "BKF_TLS_CERT": "CERT", "BKF_TLS_KEY": "KEY"}
    r = subprocess.run(["bash", "-c", render_create_script("bkf", NODES, buildx=str(fake))], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "node arm64-1 (tcp://b.example:1234) should build linux/arm64 natively, but its daemon reports " \
           "linux/amd64 first" in r.stderr
    assert "rm bkf" not in (tmp_path / "log").read_text()
