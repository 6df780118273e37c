"""Stack config as validated models (pydantic): loading, errors, and the files it points at.

``parse_config`` turns the raw ``buildkit-farm:*`` keys into the config model of the backend it
names (``components/backends/<name>/config.py``, found through the registry in
``components.backends``) or raises ``ConfigError`` listing every problem, each with its key path,
the bad value and what is allowed. Nothing here creates a resource, so a bad config fails before
any exists.
"""

from typing import Any

from components.config.errors import ConfigError
from components.config.farm import AnyFarmConfig
from components.config.loading import parse_config, read_raw_config, top_level_keys

__all__ = ["TOP_LEVEL_KEYS", "AnyFarmConfig", "ConfigError", "parse_config", "read_raw_config", "top_level_keys"]


def __getattr__(name: str) -> Any:
    if name == "TOP_LEVEL_KEYS":
        return top_level_keys()
    raise AttributeError(name)
