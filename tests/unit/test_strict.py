"""Strict platforms (components/builder/strict.py): the create script, against the stand-in buildx
of test_buildx.py, never lets a platform build on another architecture's node unless the stack opts
in (builder.emulate, $BKF_EMULATE); without the opt-in it fails naming the platform and the nodes
tried, with and without a key; the config refuses an opt-in that could not work; every node's daemon
has its own platform first."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.builder.affinity import rank
from components.builder.scripts import render_create_script
from components.config import ConfigError, parse_config
from components.node.buildkitd_toml import render_buildkitd_toml
from components.node.layout import ROOTLESS_LAYOUT
from tests.unit.test_buildx import NODES, SPARE, joined, run_spare_script

NO_NATIVE = ("no node of linux/arm64 passed the preflight (tried arm64-1); a node of another architecture builds "
             "linux/arm64 only under emulation: list linux/arm64 in builder.emulate (or BKF_EMULATE) to allow that")


def platforms_claimed(log: list[str]) -> dict[str, str]:
    """node -> the --platform it joined the real builder with ("": none)."""
    return {line.split("--node ")[1].split()[0]:
            line.split("--platform ")[1].split()[0] if "--platform " in line else ""
            for line in log if line.startswith("create") and "--name bkf " in line}


def test_every_node_joins_claiming_its_own_platform_only(tmp_path: Path) -> None:
    for args in ((), ("--key", "acme/api")):
        r, log = run_spare_script(tmp_path, *args)
        assert r.returncode == 0, r.stderr
        # each platform claimed once, by its first joined node (buildx would strip a platform from
        # every earlier claimer and send its builds to the last one); no node claims another's
        plat = {n.name: n.platform for n in SPARE}
        firsts: dict[str, str] = {}
        for name in joined(log):
            firsts.setdefault(plat[name], name)
        assert platforms_claimed(log) == {n: plat[n] if firsts[plat[n]] == n else "" for n in joined(log)}
        assert "emulating" not in r.stderr


@pytest.mark.parametrize("args", [(), ("--key", "acme/api")], ids=["keyless", "key"])
def test_no_native_node_left_fails_naming_the_platform_and_the_nodes_tried(tmp_path: Path, args: tuple[str, ...],
                                                                            ) -> None:
    r, log = run_spare_script(tmp_path, *args, down="arm64-1")
    assert r.returncode == 1
    assert f"preflight: {NO_NATIVE}" in r.stderr, r.stderr
    assert "preflight: node arm64-1 (tcp://10.0.0.2:1234) is unreachable" in r.stderr  # its own error, above
    assert "rm bkf" not in log and not joined(log)


def test_without_a_key_every_problem_is_reported_before_the_script_stops(tmp_path: Path) -> None:
    r, log = run_spare_script(tmp_path, down="arm64-1 amd64-2")
    assert r.returncode == 1
    assert NO_NATIVE in r.stderr
    assert "amd64-2 of linux/amd64 failed the preflight (tried amd64-1 amd64-2 amd64-3)" in r.stderr
    # every node was probed: the one after the first failure too
    assert "inspect --bootstrap probe-amd64-3" in log and "rm bkf" not in log


@pytest.mark.parametrize("args", [(), ("--key", "acme/api")], ids=["keyless", "key"])
def test_the_opt_in_lets_a_node_of_another_platform_claim_it_and_says_so(tmp_path: Path, args: tuple[str, ...],
                                                                          ) -> None:
    r, log = run_spare_script(tmp_path, *args, down="arm64-1", emulate=("linux/arm64",))
    assert r.returncode == 0, r.stderr
    host = rank("acme/api", ["amd64-1", "amd64-2", "amd64-3"])[0] if args else "amd64-1"
    assert f"emulating linux/arm64 on {host} (builder.emulate)" in r.stderr, r.stderr
    assert "no node of linux/arm64 passed the preflight (tried arm64-1): linux/arm64 is emulated" in r.stderr
    claimed = platforms_claimed(log)
    assert claimed[host] == "linux/amd64,linux/arm64" and "arm64-1" not in claimed
    assert all(p == "" for n, p in claimed.items() if n != host)  # linux/amd64 is the host's claim
    assert f"{host}=linux/amd64,linux/arm64" in r.stdout
    # with the native node up, the opt-in changes nothing
    r, log = run_spare_script(tmp_path, *args, emulate=("linux/arm64",))
    assert r.returncode == 0 and "emulating" not in r.stderr
    assert platforms_claimed(log)["arm64-1"] == "linux/arm64"


def test_the_environment_overrides_the_opt_in_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    r, log = run_spare_script(tmp_path, "--key", "acme/api", down="arm64-1", BKF_EMULATE="linux/arm64")
    assert r.returncode == 0 and "emulating linux/arm64 on" in r.stderr, r.stderr
    r, log = run_spare_script(tmp_path, down="arm64-1", emulate=("linux/arm64",), BKF_EMULATE="")
    assert r.returncode == 1 and NO_NATIVE in r.stderr
    r, log = run_spare_script(tmp_path, BKF_EMULATE="linux/riscv64")
    assert r.returncode == 1
    assert r.stderr.strip() == ("preflight: BKF_EMULATE: 'linux/riscv64' is not a platform of this builder's nodes "
                                "(allowed: linux/amd64 linux/arm64, space-separated, like builder.emulate)"), r.stderr
    assert log == []


def test_no_node_of_another_platform_left_to_emulate_on_fails(tmp_path: Path) -> None:
    r, log = run_spare_script(tmp_path, "--key", "k", down="arm64-1 amd64-1 amd64-2 amd64-3",
                              emulate=("linux/arm64",))
    assert r.returncode == 1 and "rm bkf" not in log
    assert "no node of linux/amd64 passed the preflight" in r.stderr


def test_one_node_per_platform_fails_naming_the_platform_and_refuses_a_runtime_opt_in(tmp_path: Path) -> None:
    r, log = run_spare_script(tmp_path, nodes=NODES, down="arm64-1")
    assert r.returncode == 1 and NO_NATIVE.replace("arm64-1", "arm64-1") in r.stderr, r.stderr
    assert "rm bkf" not in log
    r, log = run_spare_script(tmp_path, nodes=NODES, BKF_EMULATE="linux/arm64")
    assert r.returncode == 1 and "BKF_EMULATE: this script emulates nothing" in r.stderr and log == []
    # with the opt-in in the config, such a farm gets the script that can emulate
    r, log = run_spare_script(tmp_path, nodes=NODES, down="arm64-1", emulate=("linux/arm64",))
    assert r.returncode == 0, r.stderr
    assert platforms_claimed(log) == {"amd64-1": "linux/amd64,linux/arm64"}
    assert render_create_script("bkf", NODES) == render_create_script("bkf", NODES, emulate=())


def test_the_scripts_with_the_opt_in_pass_shellcheck(tmp_path: Path) -> None:
    assert shutil.which("shellcheck"), "shellcheck missing: run toolchain/bootstrap.sh"
    for i, nodes in enumerate((NODES, SPARE)):
        p = tmp_path / f"create{i}.sh"
        p.write_text(render_create_script("bkf", nodes, emulate=("linux/arm64",)))
        subprocess.run(["shellcheck", str(p)], check=True)


def ssh_raw(**builder: Any) -> dict[str, Any]:
    return {"backend": "ssh", "builder": builder, "ssh": {"privateKeyPath": "/k"},
            "nodes": [{"name": "amd64-1", "platform": "linux/amd64", "host": "h1"},
                      {"name": "arm64-1", "platform": "linux/arm64", "host": "h2"}]}


def test_the_config_takes_known_platforms_of_the_farm_once() -> None:
    assert parse_config(ssh_raw(emulate=["linux/arm64"])).builder.emulate == ("linux/arm64",)
    assert parse_config(ssh_raw()).builder.emulate == ()
    with pytest.raises(ConfigError) as e:
        parse_config(ssh_raw(emulate=["linux/riscv64", "linux/arm64", "linux/arm64"]))
    assert any(p.startswith("builder.emulate[0]: 'linux/riscv64' is not one of") for p in e.value.problems), \
        e.value.problems
    one = ssh_raw(emulate=["linux/arm64"])
    one["nodes"] = one["nodes"][:1]
    with pytest.raises(ConfigError) as e:
        parse_config(one)
    assert e.value.problems == [
        "builder.emulate[0]: 'linux/arm64' cannot be emulated by this farm: emulation covers a platform whose own "
        "nodes all fail the preflight, on a node of another platform (allowed: platforms of the nodes, with "
        "another platform beside: none)"]


def test_duplicates_are_refused() -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(ssh_raw(emulate=["linux/arm64", "linux/arm64"]))
    assert e.value.problems == ["builder.emulate[1]: 'linux/arm64' is a duplicate"]


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64"])
def test_every_daemon_has_its_own_platform_first(platform: str) -> None:
    """`[worker.oci] platforms` makes the node's platform the daemon's first (what the preflight
    checks; rootless: the same). BuildKit still appends what the kernel's binfmt_misc runs to what
    ListWorkers reports (tests/e2e/test_platforms_strict.py prints it): claims, not this, route."""
    for kw in ({}, {"layout": ROOTLESS_LAYOUT}):
        toml = render_buildkitd_toml(platform=platform, port=1234, volume_gb=100, **kw)  # type: ignore[arg-type]
        assert [line.strip() for line in toml.splitlines() if line.strip().startswith("platforms")] == [
            f'platforms = ["{platform}"]']
