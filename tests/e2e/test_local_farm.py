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
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.hosts import (
    ROOT,
    HostSet,
    Pem,
    buildctl,
    file_backend,
    make_artifact,
    need,
    run,
    running_hosts,
    write_stack_config,
)

pytestmark = pytest.mark.e2e

STACK = "e2e"
HOSTS = {"h5": "amd64-1", "h6": "arm64-1"}
BUILDER = "bkf-e2e"
REFUSED = r"certificate required|bad certificate|broken pipe|connection reset|error reading server preface: EOF"


@dataclass
class Stack:
    hosts: HostSet
    dir: Path
    env: dict[str, str]

    def pulumi(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return run(["pulumi", *args, "--stack", STACK, "--non-interactive"], cwd=ROOT, env=self.env,
                   check=check, timeout=timeout)

    def outputs(self) -> dict:
        return json.loads(self.pulumi("stack", "output", "--json", "--show-secrets").stdout)

    def host(self, node: str):  # -> Host
        name = next(h for h, n in HOSTS.items() if n == node)
        return next(h for h in self.hosts.hosts if h.name == name)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    need("pulumi", "pulumi-language-python", "buildkitd", "buildctl", "docker-buildx", "ssh", "openssl")
    d = tmp_path_factory.mktemp("e2e")
    with running_hosts(list(HOSTS), d / "state") as hs:
        artifacts = d / "artifacts"
        make_artifact(artifacts)
        config = ROOT / f"Pulumi.{STACK}.yaml"
        write_stack_config(config, HOSTS, BUILDER, d / "state", artifacts)
        env = file_backend(d)
        s = Stack(hs, d, env)
        s.pulumi("stack", "init")
        try:
            yield s
        finally:
            s.pulumi("destroy", "--yes", "--skip-preview", check=False)
            s.pulumi("stack", "rm", "--yes", "--force", check=False)
            config.unlink(missing_ok=True)


def test_bad_config_fails_before_anything_is_created(stack: Stack) -> None:
    cfg = yaml.safe_load((ROOT / f"Pulumi.{STACK}.yaml").read_text())
    cfg["config"]["buildkit-farm:nodes"][1]["platform"] = "linux/amd"
    cfg["config"]["buildkit-farm:volume"] = {"sizeGb": 5}
    bad = stack.dir / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    r = stack.pulumi("preview", "--config-file", str(bad), check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "nodes[1].platform: 'linux/amd' is not one of linux/amd64, linux/arm64" in out, out[-3000:]
    assert "volume.sizeGb: 5 is not an integer from 20 to 16384 GiB" in out, out[-3000:]
    r = stack.pulumi("up", "--yes", "--skip-preview", "--config-file", str(bad), check=False)
    assert r.returncode != 0
    state = json.loads(stack.pulumi("stack", "export").stdout)
    assert [r["type"] for r in state["deployment"].get("resources") or []] in ([], ["pulumi:pulumi:Stack"])


def test_pulumi_up_with_the_substitute_tls_and_command_plugins(stack: Stack) -> None:
    r = stack.pulumi("up", "--yes", "--skip-preview")
    assert re.search(r"Resources:\s+\+ \d+ created", r.stdout), r.stdout[-3000:]
    out = stack.outputs()
    assert out["builderName"] == BUILDER
    assert out["platforms"] == ["linux/amd64", "linux/arm64"]
    assert [n["endpoint"] for n in out["nodes"]] == ["tcp://10.77.0.15:1234", "tcp://10.77.0.16:1234"]
    assert "PRIVATE KEY" in out["clientKey"]
    # secrets stay secret in the plain listing
    plain = json.loads(stack.pulumi("stack", "output", "--json").stdout)
    assert plain["clientKey"] == "[secret]"


def test_certs_come_from_the_tls_plugin(stack: Stack) -> None:
    out = stack.outputs()
    (stack.dir / "ca.pem").write_text(out["caCert"])
    (stack.dir / "client.pem").write_text(out["clientCert"])
    ca = run(["openssl", "x509", "-noout", "-text", "-in", str(stack.dir / "ca.pem")]).stdout
    assert "CA:TRUE" in ca and "NIST CURVE: P-256" in ca
    client = run(["openssl", "x509", "-noout", "-text", "-in", str(stack.dir / "client.pem")]).stdout
    assert "TLS Web Client Authentication" in client and "NIST CURVE: P-256" in client
    run(["openssl", "verify", "-CAfile", str(stack.dir / "ca.pem"), str(stack.dir / "client.pem")])
    # the server cert each node serves carries its address as a SAN and chains to the CA
    for n in out["nodes"]:
        served = run(["bash", "-c", f"openssl s_client -connect {n['endpoint'][6:]} </dev/null 2>/dev/null |"
                                    " openssl x509 -noout -text"]).stdout
        assert f"IP Address:{n['serverName']}" in served and "TLS Web Server Authentication" in served


def client_files(stack: Stack) -> tuple[Path, Pem]:
    out = stack.outputs()
    ca, cert, key = stack.dir / "ca.pem", stack.dir / "client.pem", stack.dir / "client.key"
    ca.write_text(out["caCert"])
    cert.write_text(out["clientCert"])
    key.write_text(out["clientKey"])
    key.chmod(0o600)
    return ca, Pem(cert, key)


def test_each_node_answers_mtls_with_the_exported_client_cert_only(stack: Stack) -> None:
    ca, client = client_files(stack)
    for n in stack.outputs()["nodes"]:
        ok = buildctl(n["endpoint"], n["serverName"], ca, client, "debug", "workers").stdout
        assert ok.splitlines()[1].split()[1].split(",")[0] == n["platform"], ok
        refused = buildctl(n["endpoint"], n["serverName"], ca, None, "debug", "workers", check=False, timeout=60)
        assert refused.returncode != 0 and re.search(REFUSED, refused.stderr), refused.stderr


def sample_build(stack: Stack, *args: str) -> tuple[str, dict[str, str]]:
    ctx = stack.dir / "sample"
    if not ctx.exists():
        ctx.mkdir()
        shutil.copy(ROOT / "local" / "sample" / "Dockerfile", ctx)
        run(["bash", str(ROOT / "local" / "rootfs.sh"), str(ctx)])
    out = stack.dir / "out"
    shutil.rmtree(out, ignore_errors=True)
    r = run(["docker-buildx", "build", "--builder", BUILDER, "--progress", "plain", "--platform",
             "linux/amd64,linux/arm64", *args, "--output", f"type=local,dest={out}", str(ctx)], env=stack.env)
    built = {p.parent.name: p.read_text().strip() for p in out.glob("*/built-on")}
    return r.stderr, built


def cache_runs(built: dict[str, str]) -> dict[str, int]:
    return {k: int(re.search(r"cache-runs=(\d+)", v).group(1)) for k, v in built.items()}  # type: ignore[union-attr]


def test_builder_from_the_program_builds_each_platform_on_its_own_node(stack: Stack) -> None:
    ls = run(["docker-buildx", "ls"], env=stack.env).stdout
    assert BUILDER in ls
    _, built = sample_build(stack, "--build-arg", "BUST=first")
    assert built["linux_amd64"].startswith("platform=linux/amd64 machine=x86_64")
    assert built["linux_arm64"].startswith("platform=linux/arm64 machine=aarch64")
    ca, client = client_files(stack)
    for n in stack.outputs()["nodes"]:
        recs = buildctl(n["endpoint"], n["serverName"], ca, client, "debug", "histories", "--format",
                        "{{json .}}").stdout
        platforms = {json.loads(line)["record"]["FrontendAttrs"].get("platform") for line in recs.splitlines()}
        assert platforms == {n["platform"]}, (n["name"], platforms)


def test_cache_survives_a_daemon_restart(stack: Stack) -> None:
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


def test_renewed_server_cert_reaches_the_node_without_replacing_it(stack: Stack) -> None:
    node = stack.outputs()["nodes"][0]
    before = served_serial(node["endpoint"])
    state = json.loads(stack.pulumi("stack", "export").stdout)["deployment"]["resources"]
    urn = next(r["urn"] for r in state if r["urn"].endswith(f"::pki-server-{node['name']}-cert"))
    r = stack.pulumi("up", "--yes", "--skip-preview", "--replace", urn)
    # the cert is replaced; the node's install command is updated in place (new bundle on stdin)
    assert re.search(r"\+-\s*1 replaced", r.stdout) and re.search(r"~\s+1 updated", r.stdout), r.stdout[-3000:]
    after = served_serial(node["endpoint"])
    assert after != before and after.startswith("serial="), (before, after)
    ca, client = client_files(stack)
    buildctl(node["endpoint"], node["serverName"], ca, client, "debug", "workers")


def test_a_new_builder_config_dir_moves_the_builder_and_cleans_the_old_one(stack: Stack) -> None:
    """builder.configDir: the builder and its cert files move, nothing stays behind in the old place."""
    default, moved = stack.dir / "buildx", stack.dir / "buildx-moved"
    cfg = yaml.safe_load((ROOT / f"Pulumi.{STACK}.yaml").read_text())
    cfg["config"]["buildkit-farm:builder"]["configDir"] = str(moved)
    other = stack.dir / "moved.yaml"
    other.write_text(yaml.safe_dump(cfg))

    def has_builder(d: Path) -> bool:
        return (d / "instances" / BUILDER).exists() or (d / "certs" / BUILDER).exists()

    assert has_builder(default) and not has_builder(moved)
    stack.pulumi("up", "--yes", "--skip-preview", "--config-file", str(other))
    assert has_builder(moved) and not has_builder(default), "the old BUILDX_CONFIG kept the builder"
    assert stat.S_IMODE((moved / "certs" / BUILDER / "key.pem").stat().st_mode) == 0o600
    stack.pulumi("up", "--yes", "--skip-preview")  # and back: the moved one is cleaned up too
    assert has_builder(default) and not has_builder(moved)


def test_preview_right_after_up_shows_no_changes(stack: Stack) -> None:
    r = stack.pulumi("preview", "--expect-no-changes", "--diff", check=False)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


def test_destroy_removes_builder_daemons_and_mounts(stack: Stack) -> None:
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


def test_a_host_with_an_unexpected_ssh_key_is_refused(stack: Stack) -> None:
    cfg = yaml.safe_load((ROOT / f"Pulumi.{STACK}.yaml").read_text())
    nodes = cfg["config"]["buildkit-farm:nodes"]
    nodes[0]["sshHostKey"], nodes[1]["sshHostKey"] = nodes[1]["sshHostKey"], nodes[0]["sshHostKey"]
    swapped = stack.dir / "swapped.yaml"
    swapped.write_text(yaml.safe_dump(cfg))
    r = stack.pulumi("up", "--yes", "--skip-preview", "--config-file", str(swapped), check=False)
    assert r.returncode != 0
    assert re.search(r"host key|REMOTE HOST IDENTIFICATION|Host key verification failed", r.stdout + r.stderr), \
        (r.stdout + r.stderr)[-3000:]
    # nothing was installed on the impostor hosts
    for node in HOSTS.values():
        procs = stack.hosts.processes(stack.host(node))
        assert not [p for p in procs if "buildkitd" in p], procs
    stack.pulumi("destroy", "--yes", "--skip-preview", "--config-file", str(swapped))
