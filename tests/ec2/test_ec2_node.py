"""Tier 4: the EC2 node path for real, as far as this machine allows (stand-ins: tests/ec2/node.py).

Over 300 lines on purpose: one instance's life in order, like the daemons tier.

The dev stack's x86 node (Pulumi.dev.yaml, amd64-1) boots as a systemd-nspawn container with
systemd as PID 1. Its user data is EXACTLY the instance's ``userDataBase64`` from the program run
under Pulumi mocks (tests/unit/mockrt.py), never re-rendered here; the SSM parameter names and
types and the SSM association's command come from the same run. Certificates are real (openssl,
harness/hosts.openssl_pki). Tests run in file order: they walk one instance through its life
(boot, build, crash, reboot, cert rotation), then a second instance whose certificates cannot be read.

Each survival and refusal check was seen to fail once against a broken copy of the payload
(2026-11-24): no Restart=always (the kill -9 test: "buildkitd.service is not active again:
failed"); the per-boot hook without its token header (the reboot test: the GET got 401); `certs`
always restarting (the rotation test: "certificates changed" for an unchanged parameter); the fstab
entry by device path (the volume test); fetch failures non-fatal and TLS stripped from the daemon
(the refusal test: the daemon listened on 1234); and with the key parameter left out of SSM, the
first boot failed (cloud-init "status: error"). The metrics endpoint with ssl.CERT_OPTIONAL accepted
a scrape without a client cert (2026-12-03: "DID NOT RAISE"), and the daemon tier's OTLP receiver
saw no headers when bkf-node.sh set OTEL_EXPORTER_OTLP_HEADERS without exporting it.
"""

from __future__ import annotations

import base64
import gzip
import os
import re
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from components.builder.readiness import Readiness, aws_boot_log
from components.builder.scripts import BuilderNode, render_create_script
from components.config import parse_config
from harness.hosts import ROOT, Pem, buildctl, make_artifact, need, openssl_pki, run, sample_context
from tests.ec2.node import Ec2Node, exclusive, sweep, tcp_open
from tests.support.figures import print_past_capture, timings_line
from tests.unit import mockrt

pytestmark = pytest.mark.ec2

DEV = mockrt.stack_config(ROOT / "Pulumi.dev.yaml")
#: the dev stack's config as the program parses it (keys without the project prefix)
DEV_RAW = {k.removeprefix("buildkit-farm:"): yaml.safe_load(v) for k, v in DEV.items()
           if k.startswith("buildkit-farm:")}
#: the dev stack's x86 node: this machine is x86_64 (the arm64 node's payload refuses to run here)
NODE = "amd64-1"
LOG = "/var/log/cloud-init-output.log"


@dataclass(frozen=True)
class Rendered:
    """What the program hands EC2 and SSM for the node, under mocks."""

    user_data: bytes  # the gzipped payload (base64-decoded userDataBase64)
    volume_id: str
    region: str
    parameters: dict[str, str]  # SSM name -> type
    rotation_command: str  # the SSM association's AWS-RunShellScript command
    settings: dict[str, str]  # the payload's env file, read (not rendered) for paths and names

    @property
    def payload(self) -> str:
        return gzip.decompress(self.user_data).decode()

    @property
    def prefix(self) -> str:
        return self.settings["BKF_SSM_PREFIX"]

    @property
    def buildkit_dir(self) -> str:
        s = self.settings
        return f"{s['BKF_INSTALL_DIR']}/buildkit-{s['BKF_BUILDKIT_VERSION']}-{s['BKF_BUILDKIT_SHA256']}"


def rendered(config: dict[str, str]) -> Rendered:
    r = mockrt.run_main(config)
    user_data = base64.b64decode(r.named(f"{NODE}-instance").inputs["userDataBase64"])
    payload = gzip.decompress(user_data).decode()
    settings = dict(line.split("=", 1) for line in payload.splitlines() if re.match(r"^BKF_[A-Z0-9_]+=", line))
    params = {p.inputs["name"]: p.inputs["type"] for p in r.of_type("aws:ssm/parameter:Parameter")
              if p.inputs["name"].startswith(settings["BKF_SSM_PREFIX"] + "/")}
    return Rendered(user_data=user_data, volume_id=r.named(f"{NODE}-cache-attachment").inputs["volumeId"],
                    region=config["aws:region"], parameters=params,
                    rotation_command=r.named(f"{NODE}-cert-rotation").inputs["parameters"]["commands"],
                    settings=settings)


@dataclass
class Tier:
    dir: Path
    rootfs: Path
    artifact: Path
    dev: Rendered
    ca: Path
    ca_key: Path
    server: Pem
    client: Pem
    timings: dict[str, float]


def leaf(tier: Tier, name: str, sans: str) -> Pem:
    """Another server cert from the tier's CA (a renewal)."""
    d = tier.dir / "pki"
    key, csr, pem, ext = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem", d / f"{name}.ext"
    run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)])
    run(["openssl", "req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr)])
    ext.write_text(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment\n")
    run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(tier.ca), "-CAkey", str(tier.ca_key),
         "-CAcreateserial", "-days", "2", "-out", str(pem), "-extfile", str(ext)])
    return Pem(pem, key)


def put_certs(node: Ec2Node, r: Rendered, values: dict[str, str]) -> None:
    """The cert parameters as the program creates them (names and types from the mocks)."""
    for name, typ in r.parameters.items():
        short = name.rsplit("/", 1)[1]
        if short in values:
            f = node.work / f"param-{short}"
            f.write_text(values[short])
            node.aws("ssm", "put-parameter", "--overwrite", "--name", name, "--type", typ, "--value", f"file://{f}")


def cert_values(tier: Tier, server: Pem) -> dict[str, str]:
    return {"ca": tier.ca.read_text(), "cert": server.cert.read_text(), "key": server.key.read_text()}


@pytest.fixture(scope="module")
def tier(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Tier]:
    need("systemd-nspawn", "debootstrap", "nsenter", "losetup", "openssl", "buildctl", "buildkitd")
    timings: dict[str, float] = {}
    with exclusive():
        sweep()
        yield from _tier(tmp_path_factory, request, timings)


def _tier(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest,
          timings: dict[str, float]) -> Iterator[Tier]:
    t0 = time.monotonic()
    out = run(["bash", str(ROOT / "local" / "ec2-rootfs.sh")], timeout=1800)
    timings["rootfs (cold build)" if "building" in out.stderr else "rootfs (cached)"] = time.monotonic() - t0
    t0 = time.monotonic()
    d = tmp_path_factory.mktemp("bkf-ec2-tier")
    ca, servers, clients = openssl_pki(d / "pki", {NODE: ["IP:10.77.0.30"]})
    t = Tier(dir=d, rootfs=Path(out.stdout.strip()), artifact=make_artifact(d / "artifacts"), dev=rendered(DEV),
             ca=ca, ca_key=ca.with_suffix(".key"), server=servers[NODE], client=clients["ci"], timings=timings)
    timings["pki, artifact, user data under mocks"] = time.monotonic() - t0
    yield t
    print_past_capture(request, timings_line("tests/ec2 set-up and boot times", timings))


def new_node(tier: Tier, index: int, name: str) -> Ec2Node:
    return Ec2Node(index=index, work=tier.dir / f"bkf-ec2-node-{name}", rootfs=tier.rootfs,
                   user_data=tier.dev.user_data, volume_id=tier.dev.volume_id, region=tier.dev.region,
                   artifact=tier.artifact, buildkit_dir=tier.dev.buildkit_dir)


@pytest.fixture(scope="module")
def node(tier: Tier) -> Iterator[Ec2Node]:
    n = new_node(tier, 30, "a")
    try:
        t0 = time.monotonic()
        n.create()
        put_certs(n, tier.dev, cert_values(tier, tier.server))
        tier.timings["instance set-up"] = time.monotonic() - t0
        t0 = time.monotonic()
        n.boot()
        tier.timings["first boot to cloud-init done"] = time.monotonic() - t0
        yield n
    finally:
        n.destroy()


def bk(tier: Tier, node: Ec2Node, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return buildctl(f"tcp://{node.addr}:1234", node.addr, tier.ca, tier.client, *args, check=check)


def build(tier: Tier, node: Ec2Node, bust: str) -> str:
    """local/sample through the node: its RUN step counts its runs in a cache mount."""
    sample = sample_context(tier.dir / "sample")
    out = tier.dir / "out"
    shutil.rmtree(out, ignore_errors=True)
    bk(tier, node, "build", "--frontend", "dockerfile.v0", "--local", f"context={sample}", "--local",
       f"dockerfile={sample}", "--opt", "platform=linux/amd64", "--opt", f"build-arg:BUST={bust}",
       "--output", f"type=local,dest={out}", check=True)
    return (out / "built-on").read_text()


def unit(node: Ec2Node, *props: str) -> dict[str, str]:
    out = node.sh(f"systemctl show buildkitd.service -p {','.join(props)}").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_active(node: Ec2Node, other_than: str = "", timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        u = unit(node, "ActiveState", "MainPID")
        if u["ActiveState"] == "active" and u["MainPID"] not in ("0", other_than):
            return u["MainPID"]
        time.sleep(0.5)
    raise AssertionError(f"buildkitd.service is not active again: {unit(node, 'ActiveState', 'SubState')}")


def served_cert(tier: Tier, node: Ec2Node) -> bytes:
    """The DER cert the daemon presents (handshake with the client cert, as buildx does)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(tier.ca))
    ctx.load_cert_chain(str(tier.client.cert), str(tier.client.key))
    import socket
    with socket.create_connection((node.addr, 1234), timeout=10) as s, \
            ctx.wrap_socket(s, server_hostname=node.addr) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der
    return der


def pem_der(p: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(p.read_text())


def rerun_user_data(node: Ec2Node) -> str:
    """cloud-init runs the instance's user data again (as a service, in the environment the boot gives it);
    what it printed (its output and the log's new part)."""
    size = int(node.sh(f"stat -c %s {LOG}").stdout)
    r = node.sh("systemd-run --wait --pipe --collect --quiet cloud-init single --name scripts_user --frequency always",
                check=False)
    return r.stdout + r.stderr + node.sh(f"tail -c +{size + 1} {LOG}").stdout


def count(node: Ec2Node, text: str) -> int:
    return node.sh(f"cat {LOG}").stdout.count(text)


# ---------------------------------------------------------------- one instance's life


def test_cloud_init_runs_the_rendered_user_data(tier: Tier, node: Ec2Node) -> None:
    # cloud-init unpacked the gzipped user data into exactly the program's payload, and ran it
    assert node.sh("cat /var/lib/cloud/instance/scripts/part-001").stdout == tier.dev.payload
    assert "status: done" in node.sh("cloud-init status").stdout
    log = node.sh(f"cat {LOG}").stdout
    assert f"bkf-node[{NODE}]: buildkitd is up" in log, log
    assert "installed buildkit" not in log and "downloading" not in log  # the pre-placed release was used


def test_buildkitd_runs_under_the_rendered_unit_with_mtls(tier: Tier, node: Ec2Node) -> None:
    u = unit(node, "ActiveState", "MainPID", "ExecStart", "Restart", "FragmentPath")
    assert u["ActiveState"] == "active" and u["Restart"] == "always", u
    assert "/opt/buildkit-farm/bkf-node.sh ; argv[]=/opt/buildkit-farm/bkf-node.sh run" in u["ExecStart"], u
    # the unit systemd loaded is the one the payload rendered
    assert node.sh(f"cat {u['FragmentPath']}").stdout == node.sh("cat /opt/buildkit-farm/buildkitd.service").stdout
    argv = node.sh(f"tr '\\0' ' ' </proc/{u['MainPID']}/cmdline").stdout
    assert argv.startswith("/opt/buildkit-farm/bin/buildkitd --config /etc/buildkit/buildkitd.toml --tlscert"), argv
    # mTLS from the host: the CA's client gets in, a client without a cert does not
    out = bk(tier, node, "debug", "workers").stdout
    assert "linux/amd64" in out, out
    r = buildctl(f"tcp://{node.addr}:1234", node.addr, tier.ca, None, "debug", "workers", check=False, timeout=60)
    assert r.returncode != 0, r.stdout


def test_build_with_a_cache_mount_goes_through_the_node(tier: Tier, node: Ec2Node) -> None:
    assert build(tier, node, "1").startswith("platform=linux/amd64 machine=x86_64 cache-runs=1 bust=1")
    assert build(tier, node, "2").startswith("platform=linux/amd64 machine=x86_64 cache-runs=2 bust=2")


def test_kill_9_of_the_daemon_is_restarted_by_systemd(tier: Tier, node: Ec2Node) -> None:
    before = unit(node, "MainPID", "NRestarts")
    assert before["MainPID"] != "0", before
    t0 = time.monotonic()
    node.sh(f"kill -9 {before['MainPID']}")
    after = wait_active(node, other_than=before["MainPID"])
    t_active = time.monotonic() - t0
    assert int(unit(node, "NRestarts")["NRestarts"]) == int(before["NRestarts"]) + 1
    assert after != before["MainPID"]
    deadline = time.monotonic() + 60
    while bk(tier, node, "debug", "workers", check=False).returncode != 0:
        assert time.monotonic() < deadline, "the restarted daemon does not serve mTLS"
        time.sleep(0.1)
    print(f"\nkill -9 under systemd (RestartSec=1): unit active again {t_active:.2f} s after the kill, "
          f"serving mTLS {time.monotonic() - t0:.2f} s after it")


def test_data_volume_is_formatted_once_and_mounted_by_uuid(node: Ec2Node, tier: Tier) -> None:
    uuid = node.sh(f"blkid -s UUID -o value {node.loop}").stdout.strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", uuid), uuid
    fstab = node.sh("grep /var/lib/buildkit /etc/fstab").stdout.strip()
    assert fstab.startswith(f"UUID={uuid} /var/lib/buildkit ext4 "), fstab
    assert node.sh("findmnt -n -o SOURCE,UUID /var/lib/buildkit").stdout.split() == [node.loop, uuid]
    assert tier.dev.settings["BKF_DATA_DEVICE"] == f"/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_" \
                                                   f"{tier.dev.volume_id.replace('-', '')}"
    assert count(node, "formatting blank data device") == 1


def test_reboot_keeps_the_cache_and_the_per_boot_hook_runs_the_current_user_data(
        tier: Tier, node: Ec2Node) -> None:
    # a changed payload (the program's, for a changed stack), applied as on EC2: stop, new user data, start
    changed = rendered(mockrt.with_section(DEV, "buildkit", historyMaxEntries=150))
    assert changed.user_data != tier.dev.user_data
    node.set_user_data(changed.user_data)
    assert node.current_user_data() == changed.user_data
    uuid = node.sh(f"blkid -s UUID -o value {node.loop}").stdout.strip()
    seen = len(node.imds_requests())
    t0 = time.monotonic()
    assert node.reboot() == 133
    tier.timings["reboot to cloud-init done"] = time.monotonic() - t0

    # the per-boot hook fetched the user data with an IMDSv2 session token (the stand-in refuses GETs without)
    reqs = node.imds_requests()[seen:]
    hook = [r for r in reqs if r["path"] in ("/latest/api/token", "/latest/user-data")]
    assert hook[:2] == [{"method": "PUT", "path": "/latest/api/token", "token": False, "status": 200},
                        {"method": "GET", "path": "/latest/user-data", "token": True, "status": 200}], reqs
    assert all(r["token"] for r in reqs if r["method"] == "GET"), reqs
    assert node.sh("curl -s -o /dev/null -w '%{http_code}' http://169.254.169.254/latest/user-data",
                   check=False).stdout == "401"
    # ...and ran it: the node now has the changed payload's config, and its daemon runs it
    assert node.sh("cat /run/bkf-user-data.sh").stdout == changed.payload
    assert node.sh("grep -c 'maxEntries = 150' /etc/buildkit/buildkitd.toml").stdout.strip() == "1"
    assert "config or certificates changed; restarting buildkitd" in node.sh(f"cat {LOG}").stdout
    assert unit(node, "ActiveState")["ActiveState"] == "active"

    # the same filesystem, not formatted again, mounted by UUID; the cache mount survived
    assert node.sh("findmnt -n -o SOURCE,UUID /var/lib/buildkit").stdout.split() == [node.loop, uuid]
    assert count(node, "formatting blank data device") == 1
    assert build(tier, node, "3").startswith("platform=linux/amd64 machine=x86_64 cache-runs=3 bust=3")


def metrics_unit(node: Ec2Node) -> dict[str, str]:
    out = node.sh("systemctl show bkf-metrics.service -p ActiveState,MainPID,PartOf,UnitFileState").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def scrape(tier: Tier, node: Ec2Node, client: bool) -> tuple[int, str]:
    """GET /metrics over TLS, with or without the farm's client cert: (status, body)."""
    import socket
    ctx = ssl.create_default_context(cafile=str(tier.ca))
    if client:
        ctx.load_cert_chain(str(tier.client.cert), str(tier.client.key))
    with socket.create_connection((node.addr, METRICS_PORT), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=node.addr) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: n\r\nConnection: close\r\n\r\n")
        data = b"".join(iter(lambda: s.recv(65536), b""))
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split(" ", 2)[1]), body


METRICS_PORT = 9464


def apply_user_data(node: Ec2Node) -> str:
    """The node's current user data applied as a boot applies it: the per-boot hook fetches it from
    IMDS and runs it (`cloud-init single` would re-run the scripts of the FIRST boot's user data);
    what it printed and the log's new part."""
    size = int(node.sh(f"stat -c %s {LOG}").stdout)
    r = node.sh("systemd-run --wait --pipe --collect --quiet /var/lib/cloud/scripts/per-boot/buildkit-farm.sh",
                check=False)
    return r.stdout + r.stderr + node.sh(f"tail -c +{size + 1} {LOG}").stdout
#: config otel.headers on the same node: the value comes from its SSM SecureString, never the user data
OTEL = {"endpoint": "http://10.77.0.1:4317", "headers": {"authorization": "Bearer s3cr3t,t0k3n=="}}


def test_metrics_and_otel_headers_on_run_the_endpoint_mtls_only_and_off_removes_them(
        tier: Tier, node: Ec2Node) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    base = mockrt.with_section(DEV, "buildkit", historyMaxEntries=150)  # what the reboot test left
    on = rendered(mockrt.with_section(mockrt.with_section(base, "metrics", port=METRICS_PORT), "otel", **OTEL))
    assert "s3cr3t" not in on.payload and on.settings["BKF_OTEL_HEADERS"] == "1"
    headers_param = f"{on.prefix}/otel-headers"
    assert on.parameters[headers_param] == "SecureString", on.parameters
    put_certs(node, on, {"otel-headers": "authorization=Bearer%20s3cr3t%2Ct0k3n%3D%3D"})
    node.set_user_data(on.user_data)
    out = apply_user_data(node)
    assert "buildkitd is up" in out and "s3cr3t" not in out, out
    deadline = time.monotonic() + 60
    while not tcp_open(node.addr, METRICS_PORT):
        assert time.monotonic() < deadline, (metrics_unit(node), node.sh("journalctl -u bkf-metrics -n 20",
                                                                         check=False).stdout)
        time.sleep(0.5)
    m = metrics_unit(node)
    assert m["ActiveState"] == "active" and m["PartOf"] == "buildkitd.service", m
    # the farm's client cert: Prometheus text with buildkitd's series and the farm's
    status, body = scrape(tier, node, client=True)
    assert status == 200, body[-2000:]
    fams = {f.name: f for f in text_string_to_metric_families(body)}
    assert [s.value for s in fams["bkf_daemon_up"].samples] == [1.0], fams.get("bkf_daemon_up")
    for name in ("bkf_builds_running", "bkf_gc_max_used_bytes", "bkf_state_volume_used_bytes",
                 "bkf_tls_cert_not_after_timestamp_seconds"):
        assert name in fams, sorted(fams)
    # buildkitd's own series, forwarded from its debug socket (its build counters appear after a build)
    assert "process_resident_memory_bytes" in fams, sorted(fams)
    # no client cert: refused in the handshake, no status line at all
    with pytest.raises((ssl.SSLError, ConnectionError)):
        scrape(tier, node, client=False)
    # the OTLP headers: in buildkitd's environment (read from SSM), 0600 on disk, on no command line
    pid = unit(node, "MainPID")["MainPID"]
    environ = node.sh(f"tr '\\0' '\\n' </proc/{pid}/environ").stdout.splitlines()
    assert "OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20s3cr3t%2Ct0k3n%3D%3D" in environ
    assert node.sh("stat -c %a /etc/buildkit/tls/otel-headers").stdout.strip() == "600"
    assert "s3cr3t" not in node.sh("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '", check=False).stdout
    # a restart of buildkitd (a rotation, a config change) restarts the endpoint with it (PartOf)
    node.sh("systemctl restart buildkitd.service")
    deadline = time.monotonic() + 60
    while metrics_unit(node)["MainPID"] in ("0", m["MainPID"]):
        assert time.monotonic() < deadline, metrics_unit(node)
        time.sleep(0.5)
    # off again: the unit goes, the port closes, the headers file is removed
    node.set_user_data(rendered(base).user_data)
    out = apply_user_data(node)
    assert "buildkitd is up" in out, out
    assert metrics_unit(node).get("UnitFileState", "") in ("", "not-found") or \
        metrics_unit(node)["ActiveState"] == "inactive", metrics_unit(node)
    assert not tcp_open(node.addr, METRICS_PORT)
    assert node.sh("test -e /etc/buildkit/tls/otel-headers", check=False).returncode != 0


def test_changed_cert_in_ssm_reaches_the_node_through_the_association_command(tier: Tier, node: Ec2Node) -> None:
    command = tier.dev.rotation_command
    assert command.startswith("/opt/buildkit-farm/bkf-node.sh certs"), command
    before = unit(node, "MainPID")["MainPID"]
    r = node.ssm_run_command(command)
    assert "certificates unchanged" in r.stderr and "restarting" not in r.stderr, r.stderr
    assert unit(node, "MainPID")["MainPID"] == before

    renewed = leaf(tier, f"{NODE}-renewed", f"IP:{node.addr}")
    put_certs(node, tier.dev, {"cert": renewed.cert.read_text(), "key": renewed.key.read_text()})
    assert served_cert(tier, node) == pem_der(tier.server.cert)
    r = node.ssm_run_command(command)
    assert "certificates changed; restarting buildkitd" in r.stderr and "buildkitd is up" in r.stderr, r.stderr
    after = wait_active(node, other_than=before)
    assert served_cert(tier, node) == pem_der(renewed.cert)

    r = node.ssm_run_command(command)
    assert "certificates unchanged" in r.stderr, r.stderr
    assert unit(node, "MainPID")["MainPID"] == after
    bk(tier, node, "debug", "workers")


# ---------------------------------------------------------------- the builder's preflight against a booting instance


def start_create_script(tier: Tier, node: Ec2Node, **env: str) -> tuple[subprocess.Popen[str], Path, float]:
    """The builder's create script for this node, as the program renders it for the dev stack (its bound,
    the instance's boot-log command), started before the instance boots; the node's address is the tier's.
    Its stdout goes to the returned file, read while it runs."""
    bins = need("docker-buildx", "buildctl")
    bound = parse_config(dict(DEV_RAW), aws_region=tier.dev.region).ready_timeout()
    script = render_create_script(
        "bkf-ec2", [BuilderNode(NODE, "linux/amd64", f"tcp://{node.addr}:1234", node.addr)],
        buildx=bins["docker-buildx"],
        ready=Readiness(bound, {NODE: aws_boot_log(tier.dev.region, node.instance_id)}))
    (node.work / "create.sh").write_text(script)
    out = node.work / "create.out"
    with open(out, "w") as f:
        proc = subprocess.Popen(
            ["bash", str(node.work / "create.sh")], text=True, stdout=f, stderr=subprocess.PIPE,
            env={**os.environ, "BUILDX_CONFIG": str(node.work / "buildx"), "BKF_TLS_CA": tier.ca.read_text(),
                 "BKF_TLS_CERT": tier.client.cert.read_text(), "BKF_TLS_KEY": tier.client.key.read_text(), **env})
    return proc, out, time.monotonic()


def wait_for_text(proc: subprocess.Popen[str], out: Path, text: str, timeout: float) -> float:
    """When (monotonic) the script printed text; fails if it exits or times out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in out.read_text():
            return time.monotonic()
        assert proc.poll() is None, f"the script exited {proc.returncode}: {out.read_text()}"
        time.sleep(0.2)
    raise AssertionError(f"no {text!r} within {timeout}s: {out.read_text()}")


def test_the_builder_waits_for_a_booting_node_and_joins_it(tier: Tier) -> None:
    n = new_node(tier, 32, "c")
    try:
        n.create()
        put_certs(n, tier.dev, cert_values(tier, leaf(tier, f"{NODE}-c", f"IP:{n.addr}")))
        proc, out, t0 = start_create_script(tier, n, BKF_READY_INTERVAL="2")
        # buildx's own bootstrap retries a dial for ~20 s: boot once the script has waited past one probe
        wait_for_text(proc, out, f"preflight: waiting for node {NODE} ", 120)
        t_boot = time.monotonic()
        n.boot(timeout=600)  # the container starts, cloud-init runs the user data, the script keeps probing
        booted = time.monotonic() - t_boot
        t_up = wait_for_text(proc, out, f"preflight: node {NODE} (tcp://{n.addr}:1234) is up and builds linux/amd64",
                             900)
        _, err = proc.communicate(timeout=300)
        text = out.read_text()
        assert proc.returncode == 0, err
        waiting = [line for line in text.splitlines() if line.startswith(f"preflight: waiting for node {NODE} ")]
        assert f"builder bkf-ec2 ready: {NODE}=linux/amd64" in text, text
        tier.timings["builder: instance start to node ready"] = t_up - t_boot
        print(f"\nbuilder on a booting instance: started {t_boot - t0:.1f}s before the instance; cloud-init done "
              f"{booted:.1f}s and the node joined {t_up - t_boot:.1f}s after the instance started "
              f"({t_up - t0:.1f}s after the script); {len(waiting)} waiting lines, the last: {waiting[-1]}")
    finally:
        n.destroy()


def test_the_builder_fails_within_its_bound_naming_the_error_and_the_boot_log(tier: Tier) -> None:
    n = new_node(tier, 33, "d")
    try:
        n.create()  # no cert parameters in SSM: the node's start fails, buildkitd never listens
        bound = 45
        proc, out, t0 = start_create_script(tier, n, BKF_READY_TIMEOUT=str(bound), BKF_READY_INTERVAL="5")
        n.boot()
        _, err = proc.communicate(timeout=bound + 120)
        took = time.monotonic() - t0
        assert proc.returncode != 0, out.read_text()
        assert took < bound + 35, took  # the bound, plus at most one probe
        assert f"preflight: node {NODE} (tcp://{n.addr}:1234) is not ready after" in err, err
        assert "last error: " in err and "connection refused" in err.split("last error: ")[1], err
        assert (f"preflight: boot log of {NODE}: aws ec2 get-console-output --region {tier.dev.region} "
                f"--instance-id {n.instance_id} --latest") in err, err
        # ...and that log says why
        assert f"cannot read {tier.dev.prefix}/ca from SSM Parameter Store" in n.sh(f"cat {LOG}").stdout
        print(f"\nbuilder on a node that never starts: failed after {took:.1f}s (bound {bound}s): "
              f"{next(line for line in err.splitlines() if 'not ready' in line)}")
    finally:
        n.destroy()


# ---------------------------------------------------------------- an instance that cannot read its certs


def test_node_without_readable_certs_never_serves_without_tls(tier: Tier) -> None:
    n = new_node(tier, 31, "b")
    try:
        n.create()  # no parameters in SSM
        n.boot()
        # cloud-init reports the failed user data; the log says why; no daemon, no unit, no port
        assert "status: error" in n.sh("cloud-init status", check=False).stdout
        why = f"bkf-node[{NODE}]: ERROR: cannot read {tier.dev.prefix}/ca from SSM Parameter Store"
        log = n.sh(f"cat {LOG}").stdout
        assert why in log and "ParameterNotFound" in log, log
        assert n.sh("systemctl is-active buildkitd.service", check=False).stdout.strip() != "active"
        assert not n.sh("pgrep -x buildkitd", check=False).stdout.strip()
        assert not tcp_open(n.addr, 1234)
        assert n.sh("ls /etc/buildkit/tls").stdout.strip() == ""

        # readable parameters but no credentials to read them with (no instance profile)
        put_certs(n, tier.dev, cert_values(tier, tier.server))
        n.start_imds(role=False)
        out = rerun_user_data(n)
        assert why in out and "Unable to locate credentials" in out, out
        assert not n.sh("pgrep -x buildkitd", check=False).stdout.strip()
        assert not tcp_open(n.addr, 1234)

        # credentials again, but the key parameter holds no key
        n.start_imds(role=True)
        put_certs(n, tier.dev, {"key": "not a key\n"})
        out = rerun_user_data(n)
        assert "ERROR: key.pem from ssm is not a PEM private key" in out, out
        assert not n.sh("pgrep -x buildkitd", check=False).stdout.strip()
        assert not tcp_open(n.addr, 1234)

        # the control: with its certs readable the same node comes up (so the refusals were about the certs)
        put_certs(n, tier.dev, {"key": tier.server.key.read_text()})
        out = rerun_user_data(n)
        assert "buildkitd is up" in out, out
        # the node's AWS CLI took its instance credentials from IMDS with a session token too
        creds = [q for q in n.imds_requests() if "security-credentials" in str(q["path"])]
        assert creds and all(q["token"] for q in creds), creds
    finally:
        n.destroy()
