"""The one node bootstrap script and the payload that wraps it (no Pulumi)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from components.buildkitd_config import render_buildkitd_toml
from components.node_bootstrap import (
    ENV_FILE,
    INSTALL_DIR,
    SCRIPT_PATH,
    NodeSettings,
    render_cert_bundle,
    render_env_file,
    render_payload,
    render_uninstall,
)

SETTINGS = NodeSettings(node_name="arm64-1", platform="linux/arm64", buildkit_version="v0.32.2",
                        buildkit_sha256="9e8f46bf309ec0ab262967be5538a4dbe06be756a82621f98253933bac5dcf92",
                        port=1234, cert_source="ssm", ssm_prefix="/buildkit-farm/dev/arm64-1",
                        aws_region="eu-west-1", data_device="/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc",
                        data_fstab=True)
TOML = render_buildkitd_toml(platform="linux/arm64", port=1234, volume_gb=100)


def heredocs(payload: str) -> dict[str, str]:
    """path -> content of every `cat > 'path.new' <<'MARKER'` block."""
    out = {}
    for m in re.finditer(r"cat > '([^']+)\.new' <<'(BKF_EOF_\w+)'\n(.*?)\n\2\n", payload, re.S):
        out[m.group(1)] = m.group(3) + "\n"
    return out


def test_payload_carries_env_config_and_the_same_script() -> None:
    payload = render_payload(SETTINGS, TOML)
    docs = heredocs(payload)
    assert docs[f"{INSTALL_DIR}/bkf-node.sh"] == SCRIPT_PATH.read_text()
    assert docs["/etc/buildkit/buildkitd.toml"] == TOML
    assert docs[ENV_FILE] == render_env_file(SETTINGS)
    assert payload.rstrip().endswith(f"exec '{INSTALL_DIR}/bkf-node.sh' install")
    env = dict(line.split("=", 1) for line in docs[ENV_FILE].splitlines() if "=" in line)
    assert env["BKF_PLATFORM"] == "linux/arm64"
    assert env["BKF_CERT_SOURCE"] == "ssm"
    assert env["BKF_DATA_DEVICE"].startswith("/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_")
    assert env["BKF_BUILDKIT_SHA256"] == SETTINGS.buildkit_sha256


def test_payload_has_no_key_material() -> None:
    payload = render_payload(SETTINGS, TOML)
    assert "PRIVATE KEY" not in payload.replace("BEGIN .*PRIVATE KEY", "")


def test_env_file_rejects_shell_metacharacters() -> None:
    from dataclasses import replace
    with pytest.raises(ValueError, match="BKF_NODE_NAME"):
        render_env_file(replace(SETTINGS, node_name="x; rm -rf /"))


def test_payload_is_valid_bash() -> None:
    subprocess.run(["bash", "-n"], input=render_payload(SETTINGS, TOML), text=True, check=True)


def test_shellcheck_script_and_payload(tmp_path: Path) -> None:
    # shellcheck is part of the toolchain: missing it fails the test
    assert shutil.which("shellcheck"), "shellcheck missing: run toolchain/bootstrap.sh"
    subprocess.run(["shellcheck", "-x", str(SCRIPT_PATH)], check=True)
    p = tmp_path / "payload.sh"
    p.write_text(render_payload(SETTINGS, TOML))
    subprocess.run(["shellcheck", str(p)], check=True)


def _function(name: str) -> str:
    text = SCRIPT_PATH.read_text()
    m = re.search(rf"^{name}\(\) \{{\n.*?^\}}\n", text, re.S | re.M)
    assert m, name
    return m.group(0)


def test_cert_bundle_splits_back_into_files(tmp_path: Path) -> None:
    ca, cert, key = ("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----",
                     "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n",
                     "-----BEGIN EC PRIVATE KEY-----\nK\n-----END EC PRIVATE KEY-----\n")
    bundle = render_cert_bundle(ca, cert, key)
    # the script's own splitter, not a copy of it
    subprocess.run(["bash", "-c", _function("split_bundle") + f'split_bundle "{tmp_path}"'],
                   input=bundle, text=True, check=True)
    assert (tmp_path / "ca.pem").read_text() == ca + "\n"
    assert (tmp_path / "cert.pem").read_text() == cert
    assert (tmp_path / "key.pem").read_text() == key


def _run_script(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "BKF_ENV_FILE": str(tmp_path / "missing.env"),
            "BKF_CONFIG_DIR": str(tmp_path / "etc"), "BKF_RUN_DIR": str(tmp_path / "run"),
            "BKF_INSTALL_DIR": str(tmp_path / "opt"), "BKF_STATE_DIR": str(tmp_path / "state")}
    base.update(env)
    return subprocess.run(["bash", str(SCRIPT_PATH), *args], env=base, text=True, capture_output=True)


def test_refuses_to_start_without_tls_material(tmp_path: Path) -> None:
    (tmp_path / "etc" / "tls").mkdir(parents=True)
    (tmp_path / "etc" / "buildkitd.toml").write_text(TOML)
    r = _run_script(tmp_path, "preflight")
    assert r.returncode != 0
    assert "refusing to start buildkitd without TLS material" in r.stderr
    assert "ca.pem is missing or empty" in r.stderr
    for f in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / "etc" / "tls" / f).write_text("x")
    assert _run_script(tmp_path, "preflight").returncode == 0


def test_refuses_foreign_platform_without_emulation(tmp_path: Path) -> None:
    host = subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip()
    other = "linux/arm64" if host == "x86_64" else "linux/amd64"
    r = _run_script(tmp_path, "install", BKF_PLATFORM=other, BKF_ALLOW_EMULATION="0")
    assert r.returncode != 0
    assert f"node platform {other} needs a" in r.stderr
    assert not (tmp_path / "opt").exists(), "nothing may be installed before the platform check"


def test_refuses_bad_checksum_pin(tmp_path: Path) -> None:
    host = subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip()
    plat = "linux/amd64" if host == "x86_64" else "linux/arm64"
    r = _run_script(tmp_path, "install", BKF_PLATFORM=plat, BKF_BUILDKIT_VERSION="v0.32.2",
                    BKF_BUILDKIT_SHA256="not-a-sha")
    assert r.returncode != 0 and "BKF_BUILDKIT_SHA256 is not a sha256" in r.stderr


def test_checksum_mismatch_refuses_artifact(tmp_path: Path) -> None:
    host = subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip()
    plat = "linux/amd64" if host == "x86_64" else "linux/arm64"
    art = tmp_path / "buildkit.tar.gz"
    art.write_bytes(b"not the release")
    r = _run_script(tmp_path, "install", BKF_PLATFORM=plat, BKF_BUILDKIT_VERSION="v0.32.2",
                    BKF_BUILDKIT_SHA256="0" * 64, BKF_ARTIFACT=str(art))
    assert r.returncode != 0
    assert "checksum mismatch for buildkit v0.32.2" in r.stderr
    assert not list((tmp_path / "opt").glob("buildkit-*")), "a bad tarball must not be installed"


def test_uninstall_command_keeps_state_unless_asked() -> None:
    assert "--purge-state" not in render_uninstall(False)
    assert render_uninstall(True).count("uninstall --purge-state") == 1
