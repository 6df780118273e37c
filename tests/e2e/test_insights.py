"""Insights and metrics against a farm the real program made (issue 20 item 4).

One amd64 node (h22) of the local farm's config with metrics.port on, stood up by `pulumi up`.
Builds from two git checkouts with different origins (buildx sends vcs:source), one failing build
and one fully cached rebuild; `bkf insights --json` must count them exactly, with each
repository's cache ratio as the daemon's own records give it; the node's metrics endpoint, as the
program rendered it, serves the farm's series to the farm's client cert and refuses a client
without one.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.farm import Farm
from harness.hosts import make_artifact, need, run, running_hosts
from harness.stack import running_stack, stack_config

pytestmark = pytest.mark.e2e

STACK = "insights"
HOSTS = {"h22": "amd64-1"}
BUILDER = "bkf-insights"
METRICS_PORT = 9464
ORIGINS = {"app-a": "https://git.example.com/acme/app-a.git", "app-b": "https://git.example.com/acme/app-b.git"}


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    need("pulumi", "pulumi-language-python", "buildkitd", "buildctl", "docker-buildx", "ssh", "openssl", "git")
    d = tmp_path_factory.mktemp("insights")
    with running_hosts(list(HOSTS), d / "state") as hs:
        artifacts = d / "artifacts"
        make_artifact(artifacts)
        cfg = stack_config(HOSTS, BUILDER, hs.state, artifacts)
        cfg["buildkit-farm:metrics"] = {"port": METRICS_PORT}
        with running_stack(STACK, d, cfg) as s:
            f = Farm(hs, s, HOSTS, BUILDER)
            f.up()
            print(f"\npulumi up (one node, metrics on): {f.up_seconds:.1f} s")
            yield f


def checkout(root: Path, name: str) -> Path:
    """A git checkout whose origin is ORIGINS[name], with a Dockerfile and a Dockerfile.fail."""
    repo = root / name
    repo.mkdir(parents=True)
    (repo / "Dockerfile").write_text(f"FROM scratch\nCOPY {name}.txt /\nCOPY both.txt /\n")
    (repo / "Dockerfile.fail").write_text("FROM scratch\nCOPY missing.txt /\n")
    (repo / f"{name}.txt").write_text(f"{name}\n")
    (repo / "both.txt").write_text("both\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    for args in (["init", "-q"], ["remote", "add", "origin", ORIGINS[name]], ["add", "."], ["commit", "-qm", "x"]):
        run([*git, *args])
    return repo


def build(farm: Farm, repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return farm.build(repo, "--platform", "linux/amd64", "--output", "type=cacheonly", *args, check=check)


def test_insights_count_builds_failures_and_cache_ratios_per_repository(farm: Farm) -> None:
    a, b = checkout(farm.dir / "repos", "app-a"), checkout(farm.dir / "repos", "app-b")
    build(farm, a)
    build(farm, a)  # fully cached rebuild
    build(farm, b)
    failed = build(farm, b, "-f", str(b / "Dockerfile.fail"), check=False)
    assert failed.returncode != 0
    outputs = farm.dir / "outputs.json"
    outputs.write_text(json.dumps(farm.outputs))
    started = time.monotonic()
    r = run([sys.executable, "-m", "bkf", "insights", "--outputs", str(outputs), "--json",
             "--client", "ci"], check=False, env=farm.env)
    print(f"bkf insights over one node: {time.monotonic() - started:.2f} s")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    print(json.dumps(report, indent=1))
    rows = {row["key"]: row for row in report["rows"]}
    repo_a, repo_b = (o.removesuffix(".git") for o in ORIGINS.values())
    assert set(rows) == {repo_a, repo_b}, rows
    assert (rows[repo_a]["builds"], rows[repo_a]["failures"]) == (2, 0)
    assert (rows[repo_b]["builds"], rows[repo_b]["failures"]) == (2, 1)
    assert report["nodes"] == {"amd64-1": "up"}
    # each repository's cache ratio is what the daemon's own records say, summed over its builds
    records = farm.history("amd64-1")
    for origin in ORIGINS.values():
        mine = [x for x in records if (x.get("FrontendAttrs") or {}).get("vcs:source") == origin]
        cached, total = (sum(int(x.get(k, 0)) for x in mine) for k in ("numCachedSteps", "numTotalSteps"))
        row = rows[origin.removesuffix(".git")]
        assert (row["cached_steps"], row["total_steps"]) == (cached, total), (row, cached, total)
    # the rebuild of app-a hit the cache; app-b (one good build, one failing) hit nothing of its own
    assert rows[repo_a]["cached_steps"] > 0 and rows[repo_a]["hit_ratio"] > (rows[repo_b]["hit_ratio"] or 0)


def scrape(farm: Farm, client: bool) -> str:
    node = farm.node("amd64-1")
    host = farm.host("amd64-1").addr
    ctx = ssl.create_default_context(cafile=str(farm.ca))
    if client:
        ctx.load_cert_chain(str(farm.client.cert), str(farm.client.key))
    with socket.create_connection((host, METRICS_PORT), timeout=30) as raw, \
            ctx.wrap_socket(raw, server_hostname=node["serverName"]) as s:
        s.sendall(f"GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    assert head.split()[1] == "200", head
    return body


def test_the_programs_node_serves_metrics_to_the_farms_client_only(farm: Farm) -> None:
    fams = {f.name: f for f in text_string_to_metric_families(scrape(farm, client=True))}
    builds = {s.labels["status"]: s.value for s in fams["buildkit_builds"].samples}
    assert builds == {"success": 3, "failure": 1}, builds
    for name in ("bkf_daemon_up", "bkf_builds_running", "bkf_last_successful_build_timestamp_seconds",
                 "bkf_gc_max_used_bytes", "bkf_state_volume_used_bytes", "bkf_tls_cert_not_after_timestamp_seconds"):
        assert name in fams, name
    with pytest.raises((ssl.SSLError, ConnectionError)):
        scrape(farm, client=False)
