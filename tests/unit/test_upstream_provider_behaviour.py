"""Where a deployment on the upstream tls/command providers differs from the substitutes (issue 12).

Each rule here failed before its fix: the program must behave right with upstream, and the
substitutes must behave like upstream where the program depends on it.
"""

from __future__ import annotations

import os
import time

import pytest

from bkf_providers import command, tls
from components.config import ConfigError, parse_config
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
