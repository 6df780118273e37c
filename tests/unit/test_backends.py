"""The backend registry and the one node renderer: what a backend is, and what every node gets."""

from __future__ import annotations

import tomllib

import pytest

from components.backends import ADAPTERS, backend_type, read_inputs
from components.backends.base import HostInputs
from components.config import parse_config
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
