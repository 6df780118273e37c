"""Where a deployment on the upstream tls/command providers differs from the substitutes (issue 12).

Each rule here failed before its fix: the program must behave right with upstream, and the
substitutes must behave like upstream where the program depends on it.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from bkf_providers import command, tls
from components.backends import read_inputs
from components.backends.ssh.config import SshFarmConfig
from components.config import AnyFarmConfig, ConfigError, parse_config
from components.pki import earliest

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKv3"
RSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7"


def ssh_config(host_key: str) -> dict:
    return {"backend": "ssh", "ssh": {"privateKeyPath": "/k"},
            "nodes": [{"name": "h1", "platform": "linux/amd64", "host": "10.0.0.1", "sshHostKey": host_key}]}


def test_an_ssh_rsa_host_key_pin_is_refused_with_the_reason() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(ssh_config(RSA))
    (problem,) = e.value.problems
    assert problem.startswith(f"nodes[0].sshHostKey: {RSA!r} is not an ed25519 or ecdsa SSH public key")
    assert "SHA-1 ssh-rsa signatures, which current OpenSSH refuses" in problem
    parse_config(ssh_config(ED25519))  # ed25519 (and ecdsa) pins stay fine


def test_the_substitute_offers_only_the_pinned_keys_own_algorithm_like_upstream() -> None:
    conn = {"host": "10.0.0.1", "hostKey": RSA}
    argv = command.ssh_argv(conn, "true", known_hosts="/kh")
    assert "HostKeyAlgorithms=ssh-rsa" in argv  # not rsa-sha2-*: upstream's FixedHostKey offers ssh-rsa only


def test_cert_expiry_is_the_earliest_time_not_the_smallest_string() -> None:
    # 00:30 at +02:00 is 22:30 UTC the day before: earlier than 23:00Z, though it sorts later as text
    stamps = ["2027-01-31T23:00:00Z", "2027-02-01T00:30:00.123456789+02:00"]
    assert min(stamps) == "2027-01-31T23:00:00Z"
    assert earliest(stamps) == "2027-01-31T22:30:00Z"


def test_the_substitute_writes_validity_times_like_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime
    t = datetime(2027, 2, 1, 0, 0, 0, 120000, tzinfo=UTC)
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        assert tls.rfc3339(t) == "2027-02-01T01:00:00.12+01:00"  # RFC3339Nano, provider's local zone
        assert earliest([tls.rfc3339(t), "2027-02-01T00:00:01Z"]) == "2027-02-01T00:00:00Z"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert os.environ.get("TZ") is None


@pytest.mark.parametrize(("ca", "ok"), [(8760, False), (17519, False), (17520, True), (43800, True)])
def test_a_ca_that_would_renew_within_a_leaf_lifetime_is_refused(ca: int, ok: bool) -> None:
    raw = {"backend": "ssh", "ssh": {"privateKeyPath": "/k"}, "pki": {"validityHours": 8760, "caValidityHours": ca},
           "nodes": [{"name": "h1", "platform": "linux/amd64", "host": "10.0.0.1"}]}
    if ok:
        parse_config(raw)
        return
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert any(p.startswith(f"pki.caValidityHours: {ca} would renew the CA") and "at least 2 x validityHours = 17520"
               in p for p in e.value.problems), e.value.problems


# ---------------------------------------------------------------------------------- the SSH agent
# Upstream dials connection.agentSocketPath, else a non-empty $SSH_AUTH_SOCK, before every SSH
# connection and aborts the operation when it cannot, even when a private key is given.


def _ssh_farm(tmp_path: Path, **ssh: str) -> AnyFarmConfig:
    (tmp_path / "id").write_text("key")
    return parse_config({"backend": "ssh", "ssh": {"privateKeyPath": str(tmp_path / "id"), **ssh},
                         "nodes": [{"name": "h1", "platform": "linux/amd64", "host": "10.0.0.1"}]})


def _live_agent(tmp_path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(tmp_path / "agent.sock"))
    s.listen(1)
    return s


def test_a_stale_ssh_auth_sock_is_refused_before_anything_is_created(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "gone.sock"))
    with pytest.raises(ConfigError) as e:
        read_inputs(_ssh_farm(tmp_path), "t")
    (problem,) = e.value.problems
    assert problem.startswith(f"ssh.agentSocket: the SSH agent at {str(tmp_path / 'gone.sock')!r} ($SSH_AUTH_SOCK) "
                              "does not answer (No such file or directory)")
    assert "unset SSH_AUTH_SOCK" in problem
    monkeypatch.delenv("SSH_AUTH_SOCK")
    read_inputs(_ssh_farm(tmp_path), "t")  # no agent at all: fine, the key is used


def test_ssh_agent_socket_overrides_a_stale_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "gone.sock"))
    with _live_agent(tmp_path):
        cfg = _ssh_farm(tmp_path, agentSocket=str(tmp_path / "agent.sock"))
        read_inputs(cfg, "t")
    assert isinstance(cfg, SshFarmConfig) and cfg.ssh.agent_socket == str(tmp_path / "agent.sock")


def test_the_substitute_dials_the_agent_like_upstream(tmp_path: Path) -> None:
    env = {"SSH_AUTH_SOCK": str(tmp_path / "gone.sock")}
    assert command.agent_socket({}, env) == str(tmp_path / "gone.sock")
    assert command.agent_socket({"agentSocketPath": "/a"}, env) == "/a"  # the connection's path wins
    assert command.agent_socket({}, {"SSH_AUTH_SOCK": ""}) is None
    with pytest.raises(command.ProviderError, match=r"^dial unix .*gone\.sock: connect: no such file or directory$"):
        command.dial_agent(str(tmp_path / "gone.sock"))
    with _live_agent(tmp_path):
        command.dial_agent(str(tmp_path / "agent.sock"))


def test_every_remote_operation_of_the_substitute_aborts_on_a_stale_agent(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "gone.sock"))
    with pytest.raises(command.ProviderError, match="dial unix"):
        # (nothing listens at 192.0.2.1: the agent is dialled first, so no SSH dial happens)
        command.ssh_run(None, {"host": "192.0.2.1", "privateKey": "k"}, "true")  # type: ignore[arg-type]
