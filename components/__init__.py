"""buildkit-farm: a remote BuildKit build farm as Pulumi components.

Layers (docs/architecture.md): ``config`` (validated models) -> ``platforms`` ->
``node`` (address, buildkitd.toml, settings, payload, bkf-node.sh) -> ``pki`` ->
``backends`` (aws, ssh, kubernetes) -> ``builder`` -> ``farm`` -> ``outputs``.

What a program that embeds a farm needs is importable from here.
"""

from components.backends.base import HostInputs
from components.config import ConfigError, parse_config
from components.farm import BuildkitFarm, FarmArgs

__all__ = ["BuildkitFarm", "ConfigError", "FarmArgs", "HostInputs", "parse_config"]
