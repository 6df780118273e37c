"""Fixtures shared by the e2e modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.farm import Farm
from tests.e2e.scale_farm import scale_farm_up


@pytest.fixture(scope="session")
def scale_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    """The three-node farm (tests/e2e/scale_farm.py), up once for every module that uses it."""
    with scale_farm_up(tmp_path_factory.mktemp("scale")) as f:
        yield f
