"""Tier 3: images reach registries through the farm (real `pulumi up` of the ssh backend on h11/h12).

Five real registries (distribution's `registry`, local/registry.sh) listen on the test bridge, four
over TLS: `main` (pushes and the registry cache), `upstream` (holds a base image made here: no
Docker Hub), `mirror` (a pull-through proxy of upstream) and `untrusted` (its certificate is signed
by another CA), and `plain` (HTTP). The stack's `registries:` trusts the local CA for the first three
and names the mirror for upstream; it also trusts only the local CA for `untrusted`; `plain` has
the `http: true` opt-in (a private address). A Docker engine (Debian's
docker.io) is started on its own unix socket and data root for `--load`.

Timings (push wall time, cache cold vs from the registry, --load) are printed, never asserted.
Over 300 lines on purpose: one module fixture (hosts, four registries, a stack) serves every
registry workflow; split over modules, the farm would come up once per module.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.dockerd import running_dockerd
from harness.farm import Farm, running_farm
from harness.hosts import ROOT, HostSet, need, run, running_hosts
from harness.registries import Registries, running_registries
from harness.stack import file_backend

pytestmark = pytest.mark.e2e

STACK = "registry"
HOSTS = {"h11": "amd64-1", "h12": "arm64-1"}
BUILDER = "bkf-registry-e2e"
BRIDGE = "10.77.0.1"
MAIN, UPSTREAM, MIRROR, UNTRUSTED, PLAIN = (f"{BRIDGE}:{p}" for p in (5461, 5462, 5463, 5464, 5465))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("pulumi", "pulumi-language-python", "buildkitd", "buildctl", "docker-buildx", "registry", "ssh", "openssl",
         "curl")
    return tmp_path_factory.mktemp("registry")


@pytest.fixture(scope="module")
def hosts(workdir: Path) -> Iterator[HostSet]:
    with running_hosts(list(HOSTS), workdir / "state") as hs:
        yield hs


@pytest.fixture(scope="module")
def registries(workdir: Path, hosts: HostSet) -> Iterator[Registries]:
    """The five registries, on the bridge the test hosts brought up."""
    with running_registries(workdir / "registries") as regs:
        regs.sh("ca")
        regs.up("main", MAIN)
        regs.up("upstream", UPSTREAM)
        regs.up("mirror", MIRROR, "--proxy", f"https://{UPSTREAM}")
        regs.up("untrusted", UNTRUSTED, "--ca-dir", str(workdir / "other-ca"))
        regs.up("plain", PLAIN, "--plain")
        yield regs
    leftovers = [line for line in run(["pgrep", "-af", "registry serve"], check=False).stdout.splitlines()
                 if str(regs.dir) in line]
    assert not leftovers, leftovers


@pytest.fixture(scope="module")
def farm(workdir: Path, hosts: HostSet, registries: Registries) -> Iterator[Farm]:
    pem = registries.ca.read_text()
    trusted = {
        MAIN: {"ca": pem},
        UPSTREAM: {"ca": pem, "mirrors": [MIRROR]},
        MIRROR: {"ca": pem},
        # the nodes trust the local CA here too, but this registry's cert has another issuer
        UNTRUSTED: {"ca": pem},
        # plain HTTP: the explicit opt-in, allowed for this private address
        PLAIN: {"http": True},
    }
    # buildx writes the multi-platform index from this machine: it trusts the local CA too
    env = {**file_backend(workdir, registries.env), "SSL_CERT_FILE": registries.bundle()}
    with running_farm(hosts, STACK, workdir, HOSTS, BUILDER, registries=trusted, env=env,
                      config=workdir / f"Pulumi.{STACK}.yaml") as f:
        yield f


def context(d: Path, name: str, dockerfile: str) -> Path:
    ctx = d / name
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile)
    run(["bash", str(ROOT / "local" / "rootfs.sh"), str(ctx)])
    return ctx


BASE = "FROM scratch AS base\nARG TARGETARCH\nADD rootfs-${TARGETARCH}.tar /\n"


def platforms_of(index: dict) -> dict[str, str]:
    """platform -> manifest digest of an image index (attestation manifests left out)."""
    return {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"] for m in index["manifests"]
            if m.get("platform", {}).get("os") != "unknown"}


INDEX = "application/vnd.oci.image.index.v1+json"


def test_multi_platform_push_gives_an_index_each_platform_built_on_its_node(farm: Farm, registries: Registries) -> None:
    ctx = context(farm.dir, "multi", BASE + "FROM base\nARG TARGETPLATFORM\nARG RUN_ID\n"
                  "RUN echo \"$TARGETPLATFORM $(uname -m) $RUN_ID\" > /built-on\n")
    ref = f"{MAIN}/bkf/multi:t1"
    run_id = secrets.token_hex(4)
    t0 = time.monotonic()
    farm.build(ctx, "--platform", "linux/amd64,linux/arm64", "--build-arg", f"RUN_ID={run_id}", "--push", "-t", ref)
    wall = time.monotonic() - t0
    print(f"\n[registry] multi-platform build + --push of {ref}: {wall:.1f} s wall")
    index, _ = registries.get(MAIN, "bkf/multi/manifests/t1", INDEX)
    final = platforms_of(index)
    assert set(final) == {"linux/amd64", "linux/arm64"}, index
    # From the nodes: each node's build record shows the push of its own platform only, and the index
    # that node pushed (by digest) holds exactly the manifest the final index lists for that platform.
    for node, platform in (("amd64-1", "linux/amd64"), ("arm64-1", "linux/arm64")):
        records = [r for r in farm.history(node) if r["FrontendAttrs"].get("build-arg:RUN_ID") == run_id]
        assert len(records) == 1, (node, records)
        rec = records[0]
        assert rec["FrontendAttrs"]["platform"] == platform
        (image,) = [e for e in rec["Exporters"] if e["Type"] == "image"]
        assert image["Attrs"]["name"] == f"{MAIN}/bkf/multi" and image["Attrs"]["push"] == "true"
        pushed = rec["Result"]["ResultDeprecated"]["digest"]
        node_index, _ = registries.get(MAIN, f"bkf/multi/manifests/{pushed}", INDEX)
        assert platforms_of(node_index) == {platform: final[platform]}, (node, node_index)
    # the registry saw each platform's blobs pushed by its own node's address
    log = registries.log("main")
    for host in farm.hosts.hosts:
        assert re.search(rf'{re.escape(host.addr)} .*"PUT /v2/bkf/multi/manifests/sha256:', log), host


def test_a_registry_not_signed_by_a_configured_ca_is_refused(farm: Farm, registries: Registries) -> None:
    ctx = context(farm.dir, "untrusted", BASE + "FROM base\nRUN echo untrusted > /x\n")
    r = farm.build(ctx, "--platform", "linux/amd64", "--push", "-t", f"{UNTRUSTED}/bkf/refused:1", check=False)
    assert r.returncode != 0
    err = r.stdout + r.stderr
    assert "certificate signed by unknown authority" in err or "failed to verify certificate" in err, err[-3000:]
    assert UNTRUSTED in err, err[-3000:]
    print("\n[registry] refusal: " + next(line for line in err.splitlines() if "unknown authority" in line
                                         or "failed to verify" in line).strip()[:400])
    # nothing reached it: no repository, no upload was ever accepted
    catalog = run(["curl", "-fsS", "--cacert", str(farm.dir / "other-ca" / "ca.pem"),
                   f"https://{UNTRUSTED}/v2/_catalog"]).stdout
    assert json.loads(catalog) == {"repositories": []}
    assert "/v2/bkf/refused" not in registries.log("untrusted")


def test_plain_http_only_with_the_opt_in(farm: Farm, registries: Registries) -> None:
    ctx = context(farm.dir, "plain", BASE + "FROM base\nRUN echo plain > /x\n")
    farm.build(ctx, "--platform", "linux/amd64", "--push", "-t", f"{PLAIN}/bkf/plain:1")
    catalog = json.loads(run(["curl", "-fsS", f"http://{PLAIN}/v2/_catalog"]).stdout)
    assert catalog == {"repositories": ["bkf/plain"]}
    node = farm.hosts.hosts[0].addr
    assert re.search(rf'^{re.escape(node)} .*"PUT /v2/bkf/plain/manifests/1 ', registries.log("plain"), re.M)


CACHE_DOCKERFILE = BASE + """FROM base
ARG SEED
# three expensive steps (CPU and a pause), each a layer the registry cache must bring back; each
# writes a fresh UUID, so a step that ran again would give another file
RUN head -c 300000000 /dev/zero | sha256sum > /one && cat /proc/sys/kernel/random/uuid >> /one && sleep 2 \
    && echo "$SEED" >> /one
RUN head -c 300000000 /dev/zero | md5sum > /two && cat /proc/sys/kernel/random/uuid >> /two && sleep 2
RUN head -c 300000000 /dev/zero | sha1sum > /three && cat /proc/sys/kernel/random/uuid >> /three && sleep 2
"""
OUTPUTS = ("one", "two", "three")


def cached_steps(output: str) -> int:
    """Steps that did not run: `CACHED`, or (the last, whose layers an output needs) pulled from the cache."""
    steps = set(re.findall(r"(?m)^(#\d+) \[stage-1 \d/\d\] RUN", output))  # (progress repeats a step's header)
    return sum(1 for s in steps if re.search(rf"(?m)^{s} CACHED$", output) or (
        re.search(rf"(?m)^{s} sha256:[0-9a-f]{{64}} .* done$", output)
        and not re.search(rf"(?m)^{s} \d+\.\d+ ", output)))


def test_registry_cache_round_trip(farm: Farm, registries: Registries) -> None:
    ctx = context(farm.dir, "cache", CACHE_DOCKERFILE)
    seed = secrets.token_hex(4)
    cache = f"{MAIN}/bkf/cache:amd64"
    # a local output needs every layer's content: a cache hit must bring the layers back, not only the keys
    cold_out, warm_out = farm.dir / "cache-cold", farm.dir / "cache-warm"
    common = ["--platform", "linux/amd64", "--build-arg", f"SEED={seed}"]
    farm.buildctl("amd64-1", "prune", "--all")
    t0 = time.monotonic()
    cold = farm.build(ctx, *common, "--output", f"type=local,dest={cold_out}",
                      "--cache-to", f"type=registry,ref={cache},mode=max")
    t_cold = time.monotonic() - t0
    assert cached_steps(cold.stderr) == 0, cold.stderr[-3000:]
    # the node's local cache is emptied: only the registry can bring the steps back
    farm.buildctl("amd64-1", "prune", "--all")
    du = farm.buildctl("amd64-1", "du").stdout
    assert re.search(r"(?m)^Total:\s+0B?\s*$", du), du
    t0 = time.monotonic()
    warm = farm.build(ctx, *common, "--output", f"type=local,dest={warm_out}",
                      "--cache-from", f"type=registry,ref={cache}")
    t_warm = time.monotonic() - t0
    # no RUN step ran again: each is CACHED or its layer came from the registry ...
    assert cached_steps(warm.stderr) == 3, warm.stderr[-4000:]
    # ... and the files are the very ones the cold build made (a rerun would write new UUIDs)
    for f in OUTPUTS:
        assert (warm_out / f).read_text() == (cold_out / f).read_text(), f
    assert (warm_out / "one").read_text().endswith(f"{seed}\n")
    t0 = time.monotonic()
    farm.build(ctx, *common, "--output", f"type=local,dest={farm.dir / 'cache-local'}")
    t_local = time.monotonic() - t0
    marked = len(re.findall(r"(?m)^#\d+ CACHED$", warm.stderr))
    print(f"\n[registry] cache round trip (amd64, 3 expensive RUN steps, local output): cold {t_cold:.1f} s "
          f"(with --cache-to), after `buildctl prune --all` from the registry cache {t_warm:.1f} s "
          f"({cached_steps(warm.stderr)} of 3 RUN steps CACHED or pulled, {marked} "
          f"CACHED lines), then from the node's own cache {t_local:.1f} s")
    assert re.search(r'"(GET|HEAD) /v2/bkf/cache/manifests/amd64', registries.log("main"))


def test_base_image_pulled_through_the_mirror(farm: Farm, registries: Registries) -> None:
    base_ref = f"{UPSTREAM}/base/busybox:1"
    ctx = context(farm.dir, "base", BASE)
    farm.build(ctx, "--platform", "linux/amd64,linux/arm64", "--push", "-t", base_ref)
    mark_up, mark_mirror = len(registries.log("upstream")), len(registries.log("mirror"))
    ctx2 = context(farm.dir, "from-base", f"FROM {base_ref}\nARG N\nRUN echo from-mirror-$N > /x\n")
    farm.build(ctx2, "--platform", "linux/amd64,linux/arm64", "--build-arg", f"N={secrets.token_hex(4)}",
               "--output", "type=cacheonly")
    mirror_log = registries.log("mirror")[mark_mirror:]
    upstream_log = registries.log("upstream")[mark_up:]
    for host in farm.hosts.hosts:
        # each node asked the mirror for the base image ...
        assert re.search(rf'{re.escape(host.addr)} .*"(GET|HEAD) /v2/base/busybox/manifests/1\b', mirror_log), \
            (host, mirror_log[-3000:])
        # ... and never the upstream registry itself (the mirror did, from the bridge address)
        assert not re.search(rf'^{re.escape(host.addr)} ', upstream_log, re.M), (host, upstream_log[-3000:])
    assert re.search(rf'^{re.escape(BRIDGE)} .*"(GET|HEAD) /v2/base/busybox/manifests/', upstream_log, re.M), \
        upstream_log[-3000:]
    print("\n[registry] mirror log: " + next(line for line in mirror_log.splitlines()
                                           if "/v2/base/busybox/manifests/1" in line and line[:1].isdigit()))


@pytest.fixture
def dockerd(farm: Farm) -> Iterator[str]:
    """A Docker engine of its own (harness/dockerd.py, shared with the bench): unix socket and data root
    in the test's dir, no network of its own, `main` allowed without its CA (for `bkf load`'s pull);
    a clean stop leaves no mount behind."""
    with running_dockerd(farm.dir / "dockerd", namespace="bkf-registry-e2e", insecure_registry=MAIN) as engine:
        yield engine.host
    assert not engine.left_mounts, engine.left_mounts


def test_load_into_a_real_docker_engine(farm: Farm, dockerd: str) -> None:
    ctx = context(farm.dir, "load", BASE + "FROM base\nARG SEED\n"
                  "RUN head -c 100000000 /dev/urandom > /blob && echo \"loaded $SEED $(wc -c < /blob)\" > /info\n"
                  'CMD ["cat", "/info"]\n')
    seed = secrets.token_hex(4)
    args = ["--platform", "linux/amd64", "--build-arg", f"SEED={seed}"]
    t0 = time.monotonic()
    farm.build(ctx, *args, "--output", "type=cacheonly")  # the build itself, on the node
    t_build = time.monotonic() - t0
    t0 = time.monotonic()
    farm.build(ctx, *args, "--load", "-t", "bkf-load:e2e", env={"DOCKER_HOST": dockerd})
    wall = time.monotonic() - t0
    docker = need("docker")["docker"]
    size = int(run([docker, "--host", dockerd, "image", "inspect", "-f", "{{.Size}}", "bkf-load:e2e"]).stdout)
    out = run([docker, "--host", dockerd, "run", "--rm", "--network", "none", "bkf-load:e2e"]).stdout
    assert out.strip() == f"loaded {seed} 100000000"
    assert size > 100_000_000
    print(f"\n[registry] --load of a {size / 1e6:.0f} MB image into dockerd: {wall:.1f} s wall for the "
          f"--load build with every step cached (export + transfer + docker load); the build alone took "
          f"{t_build:.1f} s")


def test_bkf_load_goes_through_the_registry_and_pulls_only_the_changed_layer(farm: Farm, dockerd: str) -> None:
    ctx = context(farm.dir, "bkf-load", BASE + "FROM base\nRUN head -c 30000000 /dev/urandom > /blob\n"
                  "ARG STAMP\nRUN echo \"$STAMP\" > /stamp\nCMD [\"cat\", \"/stamp\"]\n")
    docker = need("docker")["docker"]
    env = {**farm.env, "DOCKER_HOST": dockerd}
    pulls = []
    for stamp in (secrets.token_hex(4), secrets.token_hex(4)):
        r = run([sys.executable, "-m", "bkf", "load", "bkf-load:via", str(ctx), "--via", MAIN, "--builder",
                 farm.builder, "--build-arg", f"STAMP={stamp}"], env=env, timeout=600)
        print(f"\n[registry] bkf load: {r.stdout.strip().splitlines()[-1]}")
        assert run([docker, "--host", dockerd, "run", "--rm", "--network", "none", "bkf-load:via"]).stdout == \
            f"{stamp}\n"
        pulls.append(r.stdout)
    # the image went through the registry under its own path ...
    assert f"loaded bkf-load:via (linux/amd64) through {MAIN}/bkf-load:via: build + push " in pulls[0]
    # ... and the second pull fetched only the layer the new STAMP changed
    assert len(re.findall(r": Pull complete$", pulls[0], re.M)) == 3, pulls[0]
    assert len(re.findall(r": Already exists$", pulls[1], re.M)) == 2, pulls[1]
    assert len(re.findall(r": Pull complete$", pulls[1], re.M)) == 1, pulls[1]


def test_dropping_the_registries_removes_their_ca_files_from_the_nodes(farm: Farm) -> None:
    """Last (it changes the stack): a config without `registries` leaves no CA file on a host."""
    for h in farm.hosts.hosts:
        assert farm.hosts.ssh(h, "ls /etc/buildkit/registry").stdout.strip(), h.name  # there before
    cfg = farm.stack.read_config()
    del cfg["buildkit-farm:registries"]
    farm.stack.write_config(cfg)
    farm.up()
    for h in farm.hosts.hosts:
        left = farm.hosts.ssh(h, "ls -A /etc/buildkit").stdout.split()
        assert "registry" not in left and "buildkitd.toml" in left, (h.name, left)
        assert "[registry" not in farm.hosts.ssh(h, "cat /etc/buildkit/buildkitd.toml").stdout
