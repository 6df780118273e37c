"""The real kubernetes plugin and the Python SDK agree on its version: toolchain/versions.env builds
and installs the provider as PULUMI_KUBERNETES_PROVIDER_VERSION, requirements.in pins the SDK that
announces exactly that version (the engine loads the version the SDK announces), and the plugin
step (toolchain/steps/plugins.sh) refuses an SDK announcing another."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

from packaging.version import Version

from harness.versions import versions_env

ROOT = Path(__file__).resolve().parents[2]


def announced() -> str:
    """The plugin version in the venv's pulumi_kubernetes/pulumi-plugin.json (read, not imported)."""
    spec = importlib.util.find_spec("pulumi_kubernetes")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "pulumi-plugin.json"
    return str(json.loads(path.read_text())["version"])


def check(*args: str) -> subprocess.CompletedProcess[str]:
    # the step's own check function, sourced the way bootstrap.sh sources it
    script = 'source toolchain/steps/plugins.sh; kubernetes_plugin_check "$@"'
    return subprocess.run(["bash", "-c", script, "check", *args], cwd=ROOT, text=True, capture_output=True,
                          check=False, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "VENV_DIR": sys.prefix, "SCRIPT_DIR": str(ROOT / "toolchain")})


def test_the_pinned_sdk_announces_the_plugin_version_the_toolchain_builds() -> None:
    version = versions_env()["PULUMI_KUBERNETES_PROVIDER_VERSION"]
    assert announced() == version
    (pin,) = re.findall(r"^pulumi-kubernetes==(\S+)$", (ROOT / "requirements.in").read_text(), re.M)
    # requirements.in: the lock spells it with hashes on continuation lines (test_python_locks
    # checks the lock agrees with the .in pin). The same version in PEP 440 (the wheel) and semver (the plugin) spelling
    assert Version(pin) == Version(version)


def test_the_plugin_step_accepts_the_pinned_version_and_refuses_another() -> None:
    version = versions_env()["PULUMI_KUBERNETES_PROVIDER_VERSION"]
    ok = check("announced", version)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    refused = check("announced", "9.9.9")
    assert refused.returncode != 0
    assert refused.stdout.strip() == (f"pulumi_kubernetes in the venv announces plugin kubernetes {announced()}, "
                                      "but toolchain/versions.env pins 9.9.9: pin them equal")
