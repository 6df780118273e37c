"""buildkitd.toml: parsed back and checked key by key."""

from __future__ import annotations

import tomllib

import pytest

from components.node.buildkitd_toml import gc_limits, render_buildkitd_toml
from components.node.layout import ROOTFUL_LAYOUT, ROOTLESS_LAYOUT


def render(**kw: object) -> dict:
    args: dict = {"platform": "linux/arm64", "port": 1234, "volume_gb": 200}
    args.update(kw)
    return tomllib.loads(render_buildkitd_toml(**args))


def test_listeners_tls_and_entitlements() -> None:
    t = render()
    assert t["grpc"]["address"] == ["tcp://0.0.0.0:1234", "unix:///run/buildkit/buildkitd.sock"]
    assert t["grpc"]["tls"] == {"cert": "/etc/buildkit/tls/cert.pem", "key": "/etc/buildkit/tls/key.pem",
                                "ca": "/etc/buildkit/tls/ca.pem"}
    assert t["insecure-entitlements"] == []
    assert "debugAddress" not in t["grpc"]
    assert t["root"] == "/var/lib/buildkit"
    assert t["worker"]["oci"]["platforms"] == ["linux/arm64"]
    assert t["worker"]["containerd"]["enabled"] is False


def test_port_is_rendered() -> None:
    assert render(port=4321)["grpc"]["address"][0] == "tcp://0.0.0.0:4321"


def test_gc_limits_follow_volume_size_with_explicit_units() -> None:
    oci = render(volume_gb=200)["worker"]["oci"]
    assert (oci["reservedSpace"], oci["maxUsedSpace"], oci["minFreeSpace"]) == ("20GB", "160GB", "20GB")
    # no bare integers anywhere a size is meant: they would be bytes
    for policy in oci["gcpolicy"]:
        for key in ("reservedSpace", "maxUsedSpace", "minFreeSpace"):
            if key in policy:
                assert isinstance(policy[key], str) and policy[key].endswith("GB"), policy
    oci_small = render(volume_gb=40)["worker"]["oci"]
    assert oci_small["maxUsedSpace"] == "32GB"


def test_cache_mounts_have_their_own_policy() -> None:
    policies = render(volume_gb=200)["worker"]["oci"]["gcpolicy"]
    cache = [p for p in policies if p.get("filters") == ["type==exec.cachemount"]]
    assert len(cache) == 1
    assert cache[0]["maxUsedSpace"] == "50GB" and cache[0]["keepDuration"] == "720h"
    assert policies[-1]["all"] is True and policies[-1]["maxUsedSpace"] == "160GB"


def test_history_is_capped() -> None:
    h = render(history_max_entries=50, history_max_age_days=7)["history"]
    assert h == {"maxEntries": 50, "maxAge": 7 * 86400}


def test_run_steps_kept_off_host_network() -> None:
    oci = render()["worker"]["oci"]
    assert oci["networkMode"] == "bridge"
    assert oci["cniBinaryPath"] == ROOTFUL_LAYOUT.cni_bin_dir
    assert oci["bridgeSubnet"] == "10.213.0.0/16"


def test_rootless_layout_paths() -> None:
    t = render(layout=ROOTLESS_LAYOUT)
    assert t["root"] == ROOTLESS_LAYOUT.state_dir
    assert t["grpc"]["tls"]["ca"] == f"{ROOTLESS_LAYOUT.config_dir}/tls/ca.pem"
    assert t["worker"]["oci"]["rootless"] is True


@pytest.mark.parametrize("gb", [20, 100, 1000, 16384])
def test_gc_limits_are_ordered(gb: int) -> None:
    g = gc_limits(gb)
    assert 0 < g.reserved_gb < g.max_used_gb < gb
    assert g.cache_mount_max_gb < g.max_used_gb
    assert g.max_used_gb + g.min_free_gb <= gb
