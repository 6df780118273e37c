"""The test harness's pure parts: the test stacks' config and the reader of toolchain/versions.env."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from harness.hosts import ROOT
from harness.stack import stack_config
from harness.versions import VERSIONS_ENV, versions_env


def host_state(d: Path, hosts: list[str]) -> Path:
    """What local/testhosts.sh leaves in a state dir that the config reads: each host's public key."""
    for h in hosts:
        (d / "hosts" / h).mkdir(parents=True)
        (d / "hosts" / h / "ssh_host_ed25519_key.pub").write_text(f"ssh-ed25519 AAAA{h} root@{h}\n")
    return d


def test_stack_config_points_the_local_farm_at_the_tests_own_hosts(tmp_path: Path) -> None:
    state = host_state(tmp_path, ["h13", "h14", "h15"])
    # given out of the config's order: the nodes keep the config's order
    cfg = stack_config({"h15": "amd64-2", "h13": "amd64-1", "h14": "arm64-1"}, "bkf-x", state, tmp_path / "art")
    local = yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text())["config"]
    nodes = cfg["buildkit-farm:nodes"]
    assert [n["name"] for n in nodes] == [n["name"] for n in local["buildkit-farm:nodes"]]
    assert [n["host"] for n in nodes] == ["10.77.0.23", "10.77.0.24", "10.77.0.25"]
    assert [n["dataDevice"] for n in nodes] == [f"/run/bkf-testhosts/{h}/data-device" for h in ("h13", "h14", "h15")]
    assert [n["sshHostKey"] for n in nodes] == [f"ssh-ed25519 AAAA{h} root@{h}" for h in ("h13", "h14", "h15")]
    assert [n["platform"] for n in nodes] == [n["platform"] for n in local["buildkit-farm:nodes"]]
    assert cfg["buildkit-farm:builder"]["name"] == "bkf-x"
    assert cfg["buildkit-farm:ssh"] == {"privateKeyPath": str(state / "ssh" / "id_ed25519"),
                                        "artifactDir": str(tmp_path / "art")}
    # everything else is the local farm's
    assert {k: v for k, v in cfg.items() if k not in ("buildkit-farm:nodes", "buildkit-farm:builder",
                                                       "buildkit-farm:ssh")} == \
        {k: v for k, v in local.items() if k not in ("buildkit-farm:nodes", "buildkit-farm:builder",
                                                     "buildkit-farm:ssh")}


def test_stack_config_leaves_out_the_nodes_a_test_does_not_name(tmp_path: Path) -> None:
    cfg = stack_config({"h5": "amd64-1", "h6": "arm64-1"}, "bkf-e2e", host_state(tmp_path, ["h5", "h6"]), tmp_path)
    assert [(n["name"], n["host"]) for n in cfg["buildkit-farm:nodes"]] == [("amd64-1", "10.77.0.15"),
                                                                           ("arm64-1", "10.77.0.16")]


def test_stack_config_refuses_a_node_the_local_farm_does_not_have(tmp_path: Path) -> None:
    with pytest.raises(AssertionError, match="riscv-1"):
        stack_config({"h5": "amd64-1", "h6": "riscv-1"}, "bkf-e2e", host_state(tmp_path, ["h5", "h6"]), tmp_path)


def test_versions_env_reads_every_assignment_and_no_comment() -> None:
    lines = [ln for ln in VERSIONS_ENV.read_text().splitlines() if ln and not ln.startswith("#")]
    versions = versions_env()
    assert len(versions) == len(lines)
    assert versions["BUILDKIT_VERSION"].startswith("v") and versions["REGISTRY_VERSION"].startswith("v")
    assert all(k.isupper() and " " not in k + v and "#" not in k for k, v in versions.items())
