"""The one node bootstrap script and the payload that wraps it (no Pulumi)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from components.node.buildkitd_toml import render_buildkitd_toml
from components.node.layout import ENV_FILE, INSTALL_DIR
from components.node.payload import SCRIPT_PATH, node_script, render_cert_bundle, render_payload, render_uninstall
from components.node.settings import NodeSettings, render_env_file

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
    assert docs[f"{INSTALL_DIR}/bkf-node.sh"] == node_script()
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


def test_the_shipped_script_is_the_repositorys_without_comment_lines(tmp_path: Path) -> None:
    shipped, repo = node_script(), SCRIPT_PATH.read_text()
    def code(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    assert code(shipped) == code(repo) and shipped.startswith("#!/usr/bin/env bash\n")
    assert len(shipped) < len(repo) - 5000  # what the user data saves
    (tmp_path / "bkf-node.sh").write_text(shipped)
    subprocess.run(["bash", "-n", str(tmp_path / "bkf-node.sh")], check=True)


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
    """The script with every setting the payload renders, its paths moved under tmp_path."""
    base = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "BKF_ENV_FILE": str(tmp_path / "missing.env"),
            **SETTINGS.env(),
            "BKF_CONFIG_DIR": str(tmp_path / "etc"), "BKF_RUN_DIR": str(tmp_path / "run"),
            "BKF_INSTALL_DIR": str(tmp_path / "opt"), "BKF_STATE_DIR": str(tmp_path / "state"),
            "BKF_CNI_DIR": str(tmp_path / "opt" / "cni"), "BKF_LOG_FILE": str(tmp_path / "log"),
            "BKF_DATA_DEVICE": "", "BKF_CERT_SOURCE": "files"}
    base.update(env)
    return subprocess.run(["bash", str(SCRIPT_PATH), *args], env=base, text=True, capture_output=True)


def test_script_carries_no_defaults_of_its_own() -> None:
    """Every BKF_ setting the script reads is one the payload renders (one source: Python)."""
    text = SCRIPT_PATH.read_text()
    # (the env file's own path is the one default: it is where the settings are)
    assert not re.search(r"\$\{BKF_(?!ENV_FILE:)\w+:-", text), "a default in bkf-node.sh: render it in NodeSettings"
    read = set(re.findall(r"\$\{?(BKF_[A-Z0-9_]+)", text)) - {"BKF_ENV_FILE"}
    assert read <= set(SETTINGS.env()), read - set(SETTINGS.env())
    declared = re.search(r"^SETTINGS=\((.*?)\)$", text, re.S | re.M)
    assert declared and set(declared.group(1).split()) == set(SETTINGS.env())


def test_missing_setting_stops_the_script_naming_it(tmp_path: Path) -> None:
    for name in ("BKF_BRIDGE_SUBNET", "BKF_RELEASE_URL", "BKF_STATE_DIR"):
        env = {k: v for k, v in SETTINGS.env().items() if k != name}
        r = subprocess.run(["bash", str(SCRIPT_PATH), "status"], text=True, capture_output=True,
                           env={"PATH": "/usr/bin:/bin", "BKF_ENV_FILE": str(tmp_path / "none"), **env})
        assert r.returncode == 1
        assert f"settings missing from {tmp_path / 'none'}: {name} " in r.stderr, r.stderr


def test_rendered_unit_starts_the_daemon_through_the_script() -> None:
    from components.node.layout import UNIT_FILE
    from components.node.payload import render_systemd_unit
    docs = heredocs(render_payload(SETTINGS, TOML))
    unit = docs[UNIT_FILE]
    assert unit == render_systemd_unit(SETTINGS)
    assert f"ExecStart={INSTALL_DIR}/bkf-node.sh run\n" in unit
    assert "RequiresMountsFor=/var/lib/buildkit\n" in unit and "Restart=always\n" in unit
    assert f"TimeoutStopSec={SETTINGS.stop_timeout_s}\n" in unit
    # the argv (with its TLS flags) is written once, in the script's run_daemon
    assert "--tlscacert" in _function("run_daemon") + SCRIPT_PATH.read_text().split("DAEMON_ARGV=(", 1)[1][:200]


def test_per_boot_hook_is_rendered_only_where_asked_and_uses_imdsv2() -> None:
    from dataclasses import replace

    from components.node.layout import PER_BOOT_HOOK_FILE
    hooked = heredocs(render_payload(replace(SETTINGS, per_boot_hook=True), TOML))[PER_BOOT_HOOK_FILE]
    assert "X-aws-ec2-metadata-token-ttl-seconds" in hooked and "latest/api/token" in hooked
    assert "X-aws-ec2-metadata-token: $t" in hooked
    assert PER_BOOT_HOOK_FILE not in heredocs(render_payload(SETTINGS, TOML))


def test_release_url_follows_version_and_host_arch() -> None:
    from dataclasses import replace
    env = SETTINGS.env()
    assert env["BKF_RELEASE_URL"].endswith("/v0.32.2/buildkit-v0.32.2.linux-arm64.tar.gz")
    emulated = replace(SETTINGS, host_arch="amd64")
    assert emulated.env()["BKF_RELEASE_URL"].endswith("linux-amd64.tar.gz")
    # with an artifact there is nothing to download
    assert replace(SETTINGS, artifact="/opt/buildkit-farm/artifacts/x.tar.gz").env()["BKF_RELEASE_URL"] == ""


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


def test_largest_realistic_user_data_fits_the_ec2_limit(capsys: pytest.CaptureFixture[str]) -> None:
    """EC2 caps user data at 16 KiB: the biggest payload a stack can render must fit, gzipped."""
    import gzip
    from dataclasses import replace

    from components.backends.aws.components import gzip_user_data
    from components.node.payload import USER_DATA_LIMIT
    name = "n" * 40  # the longest node name config allows
    big = replace(SETTINGS, node_name=name, per_boot_hook=True, init="systemd",
                  ssm_prefix=f"/buildkit-farm/{'s' * 64}/{name}", aws_region="ap-southeast-4",
                  data_device="/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0")
    toml = render_buildkitd_toml(platform="linux/arm64", port=65535, volume_gb=16384,
                                 history_max_entries=100000, history_max_age_days=3650)
    payload = render_payload(big, toml)
    packed = len(gzip.compress(payload.encode(), compresslevel=9, mtime=0))
    with capsys.disabled():
        print(f"\nlargest user data: {len(payload)} bytes, {packed} gzipped, limit {USER_DATA_LIMIT}")
    assert packed <= USER_DATA_LIMIT
    gzip_user_data(payload)  # the component's own packer accepts it
