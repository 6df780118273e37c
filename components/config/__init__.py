"""Stack config as validated models (pydantic): loading, errors, and the files it points at.

``parse_config`` turns the raw ``buildkit-farm:*`` keys into one of the backend
models of ``components.config.farm`` or raises ``ConfigError`` listing every
problem, each with its key path, the bad value and what is allowed. Nothing here
creates a resource, so a bad config fails before any exists.
"""

from components.config.errors import ConfigError
from components.config.farm import AnyFarmConfig, AwsFarmConfig, KubernetesFarmConfig, SshFarmConfig
from components.config.loading import TOP_LEVEL_KEYS, parse_config, read_raw_config

__all__ = ["TOP_LEVEL_KEYS", "AnyFarmConfig", "AwsFarmConfig", "ConfigError", "KubernetesFarmConfig",
           "SshFarmConfig", "parse_config", "read_raw_config"]
