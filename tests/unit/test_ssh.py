"""SSH-host backend under mocks (the local stack's config, with temporary key and artifacts)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pulumi
import pytest

from components.backends.ssh.sftp import render_artifact_dir_script
from components.node.payload import node_script, render_payload
from tests.unit import mockrt
from tests.unit.test_node_bootstrap import heredocs


def local_config(tmp: Path, with_artifacts: bool = True) -> dict[str, str]:
    cfg = mockrt.stack_config(mockrt.ROOT / "Pulumi.local.yaml")
    (tmp / "id").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nMOCKSSH\n-----END OPENSSH PRIVATE KEY-----\n")
    art = tmp / "artifacts"
    art.mkdir()
    if with_artifacts:
        (art / "buildkit-v0.32.2.linux-amd64.tar.gz").write_bytes(b"tarball")
    cfg["buildkit-farm:ssh"] = json.dumps({"privateKeyPath": str(tmp / "id"), "artifactDir": str(art)})
    return cfg


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> mockrt.Run:
    return mockrt.run_main(local_config(tmp_path_factory.mktemp("local")), stack="local")


def test_resources_per_host(local: mockrt.Run) -> None:
    for node in ("amd64-1", "arm64-1"):
        assert {f"{node}", f"{node}-artifact-dir", f"{node}-artifact", f"{node}-buildkitd"} <= local.names()
    assert not local.of_type("aws:ec2/instance:Instance")


def test_runs_the_same_payload_as_aws_with_certs_on_stdin(local: mockrt.Run) -> None:
    cmd = local.named("amd64-1-buildkitd").inputs
    docs = heredocs(cmd["create"])
    assert docs["/opt/buildkit-farm/bkf-node.sh"] == node_script()
    env = docs["/etc/buildkit-farm/node.env"]
    assert "BKF_CERT_SOURCE=stdin\n" in env
    assert "BKF_DATA_DEVICE=/run/bkf-testhosts/h1/data-device\n" in env
    # the artifact's own checksum is verified on the host
    assert f"BKF_BUILDKIT_SHA256={hashlib.sha256(b'tarball').hexdigest()}\n" in env
    assert "BKF_ARTIFACT=/opt/buildkit-farm/artifacts/buildkit-v0.32.2.linux-amd64.tar.gz\n" in env
    assert "PRIVATE KEY" not in cmd["create"].replace("BEGIN .*PRIVATE KEY", "")
    bundle = mockrt.secret_value(cmd["stdin"])
    assert bundle.startswith("### ca.pem\n-----BEGIN CERTIFICATE-----\nMOCK:pki-ca\n")
    assert "### key.pem\n-----BEGIN EC PRIVATE KEY-----\nMOCK:pki-server-amd64-1-key" in bundle
    assert cmd["delete"].startswith("if [ -x '/opt/buildkit-farm/bkf-node.sh' ]")
    assert "--purge-state" not in cmd["delete"]
    conn = mockrt.secret_value(cmd["connection"])  # secret as a whole: it holds the key
    assert (conn["host"], conn["port"], conn["user"]) == ("10.77.0.11", 22, "root")
    assert "MOCKSSH" in conn["privateKey"]


def test_emulated_node_gets_the_host_arch_artifact_and_opt_in(local: mockrt.Run) -> None:
    env = heredocs(local.named("arm64-1-buildkitd").inputs["create"])["/etc/buildkit-farm/node.env"]
    assert "BKF_PLATFORM=linux/arm64\n" in env and "BKF_ALLOW_EMULATION=1\n" in env
    assert "buildkit-v0.32.2.linux-amd64.tar.gz" in env
    env1 = heredocs(local.named("amd64-1-buildkitd").inputs["create"])["/etc/buildkit-farm/node.env"]
    assert "BKF_ALLOW_EMULATION=0\n" in env1


def test_artifact_copied_before_install(local: mockrt.Run) -> None:
    copy = local.named("amd64-1-artifact").inputs
    assert copy["remotePath"] == "/opt/buildkit-farm/artifacts/buildkit-v0.32.2.linux-amd64.tar.gz"
    deps = local.registered["amd64-1-buildkitd"].opts.depends_on
    assert [mockrt.short(d._name) for d in deps] == ["amd64-1-artifact"]  # type: ignore[union-attr,arg-type]


def test_cert_sans_are_the_configured_host(local: mockrt.Run) -> None:
    csr = local.named("pki-server-arm64-1-csr").inputs
    assert csr["ipAddresses"] == ["10.77.0.12"]
    assert not csr.get("dnsNames")
    assert local.values["nodes"][1] == {"name": "arm64-1", "platform": "linux/arm64",
                                        "endpoint": "tcp://10.77.0.12:1234", "serverName": "10.77.0.12"}


def test_host_key_pinning(tmp_path: Path) -> None:
    cfg = local_config(tmp_path)
    nodes = json.loads(cfg["buildkit-farm:nodes"])
    nodes[0]["sshHostKey"] = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMockKey host1"
    nodes[1]["sshHostKey"] = "not a key"
    cfg["buildkit-farm:nodes"] = json.dumps(nodes)
    with pytest.raises(pulumi.RunError) as e:
        mockrt.run_main(cfg, stack="local")
    assert "nodes[1].sshHostKey: 'not a key' is not an ed25519 or ecdsa SSH public key" in str(e.value)
    del nodes[1]["sshHostKey"]
    cfg["buildkit-farm:nodes"] = json.dumps(nodes)
    run = mockrt.run_main(cfg, stack="local")
    pinned = mockrt.secret_value(run.named("amd64-1-buildkitd").inputs["connection"])
    assert pinned["hostKey"] == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMockKey host1"
    assert "hostKey" not in mockrt.secret_value(run.named("arm64-1-buildkitd").inputs["connection"])


def test_missing_files_are_config_errors(tmp_path: Path) -> None:
    cfg = local_config(tmp_path, with_artifacts=False)
    cfg["buildkit-farm:ssh"] = json.dumps({"privateKeyPath": str(tmp_path / "nope"),
                                           "artifactDir": str(tmp_path / "artifacts")})
    with pytest.raises(pulumi.RunError) as e:
        mockrt.run_main(cfg, stack="local")
    assert f"ssh.privateKeyPath: '{tmp_path / 'nope'}' cannot be read" in str(e.value)
    assert "has no buildkit-v0.32.2.linux-amd64.tar.gz for node amd64-1" in str(e.value)


def test_payload_render_is_deterministic() -> None:
    from components.node.buildkitd_toml import render_buildkitd_toml
    from components.node.settings import NodeSettings
    s = NodeSettings(node_name="n1", platform="linux/amd64", buildkit_version="v0.32.2",
                     buildkit_sha256="0" * 64, port=1234, cert_source="stdin")
    toml = render_buildkitd_toml(platform="linux/amd64", port=1234, volume_gb=20)
    assert render_payload(s, toml) == render_payload(s, toml)


def test_the_artifact_dir_step_does_not_guess_outside_an_ssh_session(tmp_path: Path) -> None:
    r = subprocess.run(["sh", "-c", render_artifact_dir_script(str(tmp_path / "a"), "h")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "cannot find the sshd serving this session" in r.stderr
    assert (tmp_path / "a").is_dir()
    # a real sshd session, with and without the subsystem: tests/e2e/test_sftp.py


def test_the_drain_timeout_reaches_every_host(tmp_path: Path) -> None:
    cfg = mockrt.with_section(local_config(tmp_path), "buildkit", drainTimeoutSeconds=0)
    run = mockrt.run_main(cfg, stack="local")
    for node in ("amd64-1", "arm64-1"):
        assert "BKF_DRAIN_TIMEOUT=0\n" in heredocs(run.named(f"{node}-buildkitd").inputs["create"])[
            "/etc/buildkit-farm/node.env"]
