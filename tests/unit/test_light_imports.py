"""What importing a light module loads: checked in a fresh interpreter, where nothing is cached.

The status CLI must start without the cloud SDKs, and the contracts the policy pack imports from
its own venv (which has neither pydantic nor this project's Pulumi SDKs) must be stdlib-only.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("pulumi", "pulumi_aws", "pulumi_kubernetes", "pulumi_command", "pulumi_tls", "pydantic")


def loaded_after(module: str) -> set[str]:
    """The top-level packages among HEAVY that importing `module` loads."""
    code = (f"import json, sys; import {module}; "
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(HEAVY)!r}))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_status_loads_no_cloud_sdk() -> None:
    loaded = loaded_after("components.status")
    assert not loaded & {"pulumi_aws", "pulumi_kubernetes"}, loaded


@pytest.mark.parametrize("module", ["components", "components.backends", "components.backends.aws",
                                    "components.backends.ssh", "components.backends.kubernetes"])
def test_packages_and_the_registry_are_light(module: str) -> None:
    assert loaded_after(module) == set()


@pytest.mark.parametrize("module", ["components.contracts.payload", "components.contracts.wire",
                                    "review.policy.payload", "review.policy.resources"])
def test_contracts_are_stdlib_only(module: str) -> None:
    assert loaded_after(module) == set()


def test_the_public_names_still_resolve() -> None:
    import components

    assert components.parse_config.__module__ == "components.config.loading"
    assert components.BuildkitFarm.__name__ == "BuildkitFarm"
    with pytest.raises(AttributeError):
        components.Nope  # noqa: B018
