"""Several nodes per platform, on every backend (under mocks): each spare is a full node, and the
exported create script then takes a key (tests/unit/test_buildx.py runs that script)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit import mockrt
from tests.unit.test_policy import example_config


def with_spares(name: str, tmp_path: Path) -> dict[str, str]:
    cfg = example_config(name, tmp_path)
    nodes = json.loads(cfg["buildkit-farm:nodes"])
    extra = {"dev": [{"name": "amd64-2", "platform": "linux/amd64", "instanceType": "c7i.xlarge"},
                     {"name": "arm64-2", "platform": "linux/arm64"}],
             "k8s": [{"name": "amd64-2", "platform": "linux/amd64"}, {"name": "amd64-3", "platform": "linux/amd64"}],
             "local": []}[name]
    cfg["buildkit-farm:nodes"] = json.dumps(nodes + extra)
    return cfg


@pytest.mark.parametrize("name", ["dev", "k8s", "local"])
def test_spare_nodes_are_full_nodes_and_the_script_takes_a_key(name: str, tmp_path: Path) -> None:
    cfg = with_spares(name, tmp_path)
    r = mockrt.run_main(cfg, stack=name)
    nodes = r.values["nodes"]
    want = [n["name"] for n in json.loads(cfg["buildkit-farm:nodes"])]
    assert [n["name"] for n in nodes] == want
    assert len({n["platform"] for n in nodes}) < len(nodes)
    # every node its own endpoint and server cert
    assert len({n["endpoint"] for n in nodes}) == len(nodes)
    certs = [x.name for x in r.of_type("tls:index/locallySignedCert:LocallySignedCert")]
    for n in want:
        assert any(f"server-{n}" in c for c in certs), (n, certs)
    script = r.values["buildxCreateScript"]
    assert "rank()" in script and 'key=${BKF_KEY:-}' in script
    for n in nodes:
        assert f"ep[{n['name']}]={n['endpoint']}" in script
    # the action form lists every node (it cannot pick by key: see docs/operations.md)
    assert r.values["setupBuildxAction"]["append"].count("- name:") == len(nodes) - 1
