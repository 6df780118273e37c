"""Tier 3: real `pulumi up` / `preview` / `destroy` of the ssh backend against test hosts.

The real engine and language host, with the SUBSTITUTE tls and command plugins
(toolchain/providers: upstream's Go modules are refused by the proxy), stand up a
two-node farm on this machine from a stack derived from Pulumi.local.yaml
(own hosts h5/h6, own builder, temporary file backend), then the builder the
program created builds a multi-platform image through both nodes.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.farm import Farm, running_farm
from harness.hosts import buildctl, need, run, running_hosts, sample_context

pytestmark = pytest.mark.e2e

STACK = "e2e"
HOSTS = {"h5": "amd64-1", "h6": "arm64-1"}
BUILDER = "bkf-e2e"
REFUSED = r"certificate required|bad certificate|broken pipe|connection reset|error reading server preface: EOF"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    need("pulumi", "pulumi-language-python", "buildkitd", "buildctl", "docker-buildx", "ssh", "openssl")
    d = tmp_path_factory.mktemp("e2e")
    with running_hosts(list(HOSTS), d / "state") as hs, running_farm(hs, STACK, d, HOSTS, BUILDER, up=False) as f:
        yield f


def test_bad_config_fails_before_anything_is_created(stack: Farm) -> None:
    def bad_values(cfg: dict) -> None:
        cfg["buildkit-farm:nodes"][1]["platform"] = "linux/amd"
        cfg["buildkit-farm:volume"] = {"sizeGb": 5}

    bad = stack.stack.variant("bad", bad_values)
    r = stack.pulumi("preview", config=bad, check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "nodes[1].platform: 'linux/amd' is not one of linux/amd64, linux/arm64" in out, out[-3000:]
    assert "volume.sizeGb: 5 is not an integer from 20 to 16384 GiB" in out, out[-3000:]
    r = stack.pulumi("up", "--yes", "--skip-preview", config=bad, check=False)
    assert r.returncode != 0
    state = json.loads(stack.pulumi("stack", "export").stdout)
    assert [r["type"] for r in state["deployment"].get("resources") or []] in ([], ["pulumi:pulumi:Stack"])


def test_pulumi_up_with_the_substitute_tls_and_command_plugins(stack: Farm) -> None:
    r = stack.up()
    assert re.search(r"Resources:\s+\+ \d+ created", r.stdout), r.stdout[-3000:]
    out = stack.outputs
    assert out["builderName"] == BUILDER
    assert out["platforms"] == ["linux/amd64", "linux/arm64"]
    assert [n["endpoint"] for n in out["nodes"]] == ["tcp://10.77.0.15:1234", "tcp://10.77.0.16:1234"]
    assert "PRIVATE KEY" in out["clientKey"]
    # secrets stay secret in the plain listing
    plain = json.loads(stack.pulumi("stack", "output", "--json").stdout)
    assert plain["clientKey"] == "[secret]"


def test_certs_come_from_the_tls_plugin(stack: Farm) -> None:
    out = stack.read_outputs()
    ca = run(["openssl", "x509", "-noout", "-text", "-in", str(stack.ca)]).stdout
    assert "CA:TRUE" in ca and "NIST CURVE: P-256" in ca
    client = run(["openssl", "x509", "-noout", "-text", "-in", str(stack.client.cert)]).stdout
    assert "TLS Web Client Authentication" in client and "NIST CURVE: P-256" in client
    run(["openssl", "verify", "-CAfile", str(stack.ca), str(stack.client.cert)])
    # the server cert each node serves carries its address as a SAN and chains to the CA
    for n in out["nodes"]:
        served = run(["bash", "-c", f"openssl s_client -connect {n['endpoint'][6:]} </dev/null 2>/dev/null |"
                                    " openssl x509 -noout -text"]).stdout
        assert f"IP Address:{n['serverName']}" in served and "TLS Web Server Authentication" in served


def test_each_node_answers_mtls_with_the_exported_client_cert_only(stack: Farm) -> None:
    for n in stack.read_outputs()["nodes"]:
        ok = stack.buildctl(n["name"], "debug", "workers").stdout
        assert ok.splitlines()[1].split()[1].split(",")[0] == n["platform"], ok
        refused = buildctl(n["endpoint"], n["serverName"], stack.ca, None, "debug", "workers", check=False, timeout=60)
        assert refused.returncode != 0 and re.search(REFUSED, refused.stderr), refused.stderr


def sample_build(stack: Farm, *args: str) -> tuple[str, dict[str, str]]:
    ctx = sample_context(stack.dir / "sample")
    out = stack.dir / "out"
    shutil.rmtree(out, ignore_errors=True)
    r = stack.build(ctx, "--platform", "linux/amd64,linux/arm64", *args, "--output", f"type=local,dest={out}")
    built = {p.parent.name: p.read_text().strip() for p in out.glob("*/built-on")}
    return r.stderr, built


def cache_runs(built: dict[str, str]) -> dict[str, int]:
    return {k: int(re.search(r"cache-runs=(\d+)", v).group(1)) for k, v in built.items()}  # type: ignore[union-attr]


def test_builder_from_the_program_builds_each_platform_on_its_own_node(stack: Farm) -> None:
    ls = run(["docker-buildx", "ls"], env=stack.env).stdout
    assert BUILDER in ls
    _, built = sample_build(stack, "--build-arg", "BUST=first")
    assert built["linux_amd64"].startswith("platform=linux/amd64 machine=x86_64")
    assert built["linux_arm64"].startswith("platform=linux/arm64 machine=aarch64")
    for n in stack.read_outputs()["nodes"]:
        platforms = {r["FrontendAttrs"].get("platform") for r in stack.history(n["name"])}
        assert platforms == {n["platform"]}, (n["name"], platforms)


def test_cache_survives_a_daemon_restart(stack: Farm) -> None:
    _, built = sample_build(stack, "--build-arg", "BUST=restart")
    before = cache_runs(built)
    r = stack.hosts.ssh(stack.host("arm64-1"), "/opt/buildkit-farm/bkf-node.sh restart")
    assert "buildkitd is up" in r.stderr
    log, built = sample_build(stack, "--build-arg", "BUST=restart")
    # the restarted node's RUN step (buildx prints it with the platform expanded) came from the cache
    assert re.search(r"RUN --mount=type=cache[^\n]*platform=linux/arm64[^\n]*\n#\d+ CACHED", log), log[-3000:]
    _, built = sample_build(stack, "--build-arg", "BUST=after-restart")
    assert cache_runs(built) == {k: v + 1 for k, v in before.items()}


def served_serial(endpoint: str) -> str:
    return run(["bash", "-c", f"openssl s_client -connect {endpoint[6:]} </dev/null 2>/dev/null |"
                              " openssl x509 -noout -serial"]).stdout.strip()


def test_renewed_server_cert_reaches_the_node_without_replacing_it(stack: Farm) -> None:
    node = stack.read_outputs()["nodes"][0]
    before = served_serial(node["endpoint"])
    state = json.loads(stack.pulumi("stack", "export").stdout)["deployment"]["resources"]
    urn = next(r["urn"] for r in state if r["urn"].endswith(f"::pki-server-{node['name']}-cert"))
    r = stack.up("--replace", urn)
    # the cert is replaced; the node's install command is updated in place (new bundle on stdin)
    assert re.search(r"\+-\s*1 replaced", r.stdout) and re.search(r"~\s+1 updated", r.stdout), r.stdout[-3000:]
    after = served_serial(node["endpoint"])
    assert after != before and after.startswith("serial="), (before, after)
    stack.buildctl(node["name"], "debug", "workers")


def test_a_new_builder_config_dir_moves_the_builder_and_cleans_the_old_one(stack: Farm) -> None:
    """builder.configDir: the builder and its cert files move, nothing stays behind in the old place."""
    default, moved = stack.dir / "buildx", stack.dir / "buildx-moved"
    other = stack.stack.variant("moved", lambda c: c["buildkit-farm:builder"].update(configDir=str(moved)))

    def has_builder(d: Path) -> bool:
        return (d / "instances" / BUILDER).exists() or (d / "certs" / BUILDER).exists()

    assert has_builder(default) and not has_builder(moved)
    stack.up(config=other)
    assert has_builder(moved) and not has_builder(default), "the old BUILDX_CONFIG kept the builder"
    assert stat.S_IMODE((moved / "certs" / BUILDER / "key.pem").stat().st_mode) == 0o600
    stack.up()  # and back: the moved one is cleaned up too
    assert has_builder(default) and not has_builder(moved)


def test_preview_right_after_up_shows_no_changes(stack: Farm) -> None:
    r = stack.pulumi("preview", "--expect-no-changes", "--diff", check=False)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_destroy_removes_builder_daemons_and_mounts(stack: Farm) -> None:
    stack.pulumi("destroy", "--yes", "--skip-preview")
    assert BUILDER not in run(["docker-buildx", "ls"], env=stack.env).stdout
    for node in HOSTS.values():
        h = stack.host(node)
        # nothing but sshd runs in the host any more (no daemon, supervisor or build step)
        procs = stack.hosts.processes(h)
        assert procs and all(p.startswith("/usr/sbin/sshd") or p.startswith("sshd") for p in procs), procs
        left = stack.hosts.ssh(h, "findmnt -n /var/lib/buildkit; ls -A /opt/buildkit-farm /etc/buildkit/tls 2>&1",
                               check=False).stdout
        assert "/dev/loop" not in left and "bkf-node.sh" not in left and "key.pem" not in left, left


def test_a_host_with_an_unexpected_ssh_key_is_refused(stack: Farm) -> None:
    def swap_keys(cfg: dict) -> None:
        nodes = cfg["buildkit-farm:nodes"]
        nodes[0]["sshHostKey"], nodes[1]["sshHostKey"] = nodes[1]["sshHostKey"], nodes[0]["sshHostKey"]

    swapped = stack.stack.variant("swapped", swap_keys)
    r = stack.pulumi("up", "--yes", "--skip-preview", config=swapped, check=False)
    assert r.returncode != 0
    assert re.search(r"host key|REMOTE HOST IDENTIFICATION|Host key verification failed", r.stdout + r.stderr), \
        (r.stdout + r.stderr)[-3000:]
    # nothing was installed on the impostor hosts
    for node in HOSTS.values():
        procs = stack.hosts.processes(stack.host(node))
        assert not [p for p in procs if "buildkitd" in p], procs
    stack.pulumi("destroy", "--yes", "--skip-preview", config=swapped)
