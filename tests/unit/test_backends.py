"""The backend registry and the one node renderer: what a backend is, and what every node gets."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from components import backends
from components.backends import ADAPTERS, backend_type, read_inputs
from components.backends.base import HostInputs
from components.config import ConfigError, loading, parse_config
from components.config.farm import BACKENDS, FarmBase
from components.contracts.payload import parse_env, payload_files
from components.node.layout import ENV_FILE, ROOTLESS_LAYOUT
from components.node.render import render

SSH = {"backend": "ssh", "buildkit": {"port": 4321},
       "nodes": [{"name": "arm-1", "platform": "linux/arm64", "host": "10.77.0.11", "hostPlatform": "linux/amd64"}],
       "ssh": {"privateKeyPath": "/k"}, "registries": {"docker.io": {"mirrors": ["mirror.internal:5000"]}}}


def test_every_configurable_backend_has_an_adapter() -> None:
    assert sorted(ADAPTERS) == sorted(BACKENDS)
    for name in BACKENDS:
        adapter = backend_type(name)
        for method in ("read_inputs", "addresses", "nodes", "extras"):
            assert callable(getattr(adapter, method)), (name, method)


def test_backends_without_host_files_read_nothing() -> None:
    aws = parse_config({"backend": "aws", "nodes": [{"name": "amd64-1", "platform": "linux/amd64"}],
                        "allowedCidrs": ["10.0.0.0/16"], "aws": {"availabilityZone": "eu-west-1a"}},
                       aws_region="eu-west-1")
    assert read_inputs(aws, "prod") == HostInputs(stack="prod")


def bundle_env(cfg: FarmBase) -> dict[str, str]:
    bundle = render(cfg, cfg.nodes[0], cert_source="stdin", host_arch=cfg.nodes[0].host_arch)
    return parse_env(payload_files(bundle.payload())[ENV_FILE])


def test_one_config_value_reaches_every_file_of_the_bundle() -> None:
    cfg = parse_config(SSH)
    bundle = render(cfg, cfg.nodes[0], cert_source="stdin", host_arch="amd64")
    assert bundle.settings is not None and bundle.settings.port == 4321
    assert tomllib.loads(bundle.buildkitd_toml)["grpc"]["address"][0] == "tcp://0.0.0.0:4321"
    env = bundle_env(cfg)
    assert env["BKF_PORT"] == "4321" and env["BKF_CERT_SOURCE"] == "stdin"
    # the checksum follows the host's arch (an emulated node installs the host's tarball)
    assert env["BKF_BUILDKIT_SHA256"] == cfg.buildkit.sha256_of("amd64") != cfg.buildkit.sha256_of("arm64")


def test_a_pod_bundle_has_no_host_settings() -> None:
    cfg = parse_config(SSH)
    bundle = render(cfg, cfg.nodes[0], ROOTLESS_LAYOUT)
    assert bundle.settings is None
    toml = tomllib.loads(bundle.buildkitd_toml)
    assert toml["root"] == ROOTLESS_LAYOUT.state_dir
    assert toml["grpc"]["address"][0] == "tcp://0.0.0.0:4321"
    assert toml["registry"]["docker.io"]["mirrors"] == ["mirror.internal:5000"]
    with pytest.raises(ValueError, match="runs no bkf-node"):
        bundle.payload()


FOURTH_CONFIG = '''
from typing import Literal

from pydantic import Field

from components.config.farm import BACKEND_DOC, FarmBase, Nodes
from components.config.nodes import NodeSpec


class FakeFarmConfig(FarmBase):
    backend: Literal["fake"] = Field("fake", description=BACKEND_DOC)
    nodes: Nodes[NodeSpec] = ()
'''
FOURTH_ADAPTER = '''
from components.backends.base import Extras, HostInputs, StaticAddresses


class FakeBackend:
    def __init__(self, cfg, inputs, child):
        self.cfg = cfg

    @staticmethod
    def read_inputs(cfg, stack):
        return HostInputs(stack=stack)

    def addresses(self):
        return StaticAddresses([])

    def nodes(self, addresses, pki):
        return []

    def extras(self, nodes):
        return Extras()
'''


def test_a_fourth_backend_is_one_package_and_one_registry_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the guide in docs/adding-a-backend.md, done for real: a package with config.py and adapter.py, one Entry
    pkg = tmp_path / "fourth"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "config.py").write_text(FOURTH_CONFIG)
    (pkg / "adapter.py").write_text(FOURTH_ADAPTER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(backends.BACKENDS, "fake", backends.Entry("fourth.config:FakeFarmConfig",
                                                                   "fourth.adapter:FakeBackend"))
    for cached in (backends.config_models, loading._adapter, loading.top_level_keys):
        cached.cache_clear()
    try:
        cfg = parse_config({"backend": "fake", "nodes": [{"name": "n-1", "platform": "linux/amd64"}]})
        assert type(cfg).__name__ == "FakeFarmConfig" and cfg.platforms() == ["linux/amd64"]
        assert read_inputs(cfg, "prod") == HostInputs(stack="prod")
        assert getattr(backend_type("fake"), "__name__", None) == "FakeBackend"
        with pytest.raises(ConfigError, match=r"nodes\[0\]\.name: 'N' is not a node name"):
            parse_config({"backend": "fake", "nodes": [{"name": "N", "platform": "linux/amd64"}]})
    finally:
        monkeypatch.undo()
        for cached in (backends.config_models, loading._adapter, loading.top_level_keys):
            cached.cache_clear()
    # and the registry is as it was
    assert "fake" not in config_models_now()


def config_models_now() -> dict[str, type[FarmBase]]:
    return backends.config_models()
