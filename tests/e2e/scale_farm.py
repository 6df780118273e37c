"""The three-node farm of the local farm's shape (amd64-1 on h13, arm64-1 on h14, amd64-2 on h15),
stood up by a real `pulumi up` ONCE per run and shared by the tests that need several nodes on a
platform (test_scale.py, test_ci_action_farm.py: conftest.py's `scale_farm`): a farm costs minutes.
Its helpers: the keys the rendezvous order sends to each amd64 node, which daemon ran a build."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from components.builder.affinity import rank
from harness.farm import Farm, running_farm
from harness.hosts import need, running_hosts

STACK = "scale"
HOSTS = {"h13": "amd64-1", "h14": "arm64-1", "h15": "amd64-2"}
BUILDER = "bkf-scale"
AMD = ["amd64-1", "amd64-2"]
NODE_SH = "/opt/buildkit-farm/bkf-node.sh"


@contextmanager
def scale_farm_up(d: Path) -> Iterator[Farm]:
    """The farm for the block (hosts up, `pulumi up`); destroyed and the hosts down after it."""
    need("pulumi", "pulumi-language-python", "buildkitd", "buildctl", "docker-buildx", "ssh", "openssl")
    with running_hosts(list(HOSTS), d / "state") as hs, running_farm(hs, STACK, d, HOSTS, BUILDER) as f:
        yield f


def keys_for_each_amd64_node() -> dict[str, str]:
    """node -> the first key (repo-0, repo-1, ...) whose rendezvous order puts that node first."""
    found: dict[str, str] = {}
    for i in range(100):
        found.setdefault(rank(f"acme/repo-{i}", AMD)[0], f"acme/repo-{i}")
    assert set(found) == set(AMD), found
    return found


def ran_on(farm: Farm, bust: str) -> list[str]:
    """The nodes whose daemon history holds the build with this BUST."""
    return [n for n in HOSTS.values()
            if any(r["FrontendAttrs"].get("build-arg:BUST") == bust for r in farm.history(n))]


def answers(farm: Farm, node: str) -> bool:
    return farm.buildctl(node, "debug", "workers", check=False).returncode == 0  # (a stopped node does not)


def stop(farm: Farm, node: str) -> None:
    farm.hosts.ssh(farm.host(node), f"{NODE_SH} stop")


def start(farm: Farm, node: str) -> None:
    farm.hosts.ssh(farm.host(node), f"{NODE_SH} start")
