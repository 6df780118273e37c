"""An EC2 node as real as this machine allows: a systemd-nspawn container booting a Debian rootfs.

Over 300 lines on purpose: one instance's whole world (network, overlay, volume, emulators, container)
in one class, so that its clean-up undoes everything it made.

What stands in for what (everything else is the real thing: systemd as PID 1, cloud-init, the
payload and bkf-node.sh as the program renders them, buildkitd, runc, CNI):
  instance          systemd-nspawn -b of local/ec2-rootfs.sh's rootfs through an overlay (the cached
                    tree is never written); its network namespace bkf-ec2-<n> on bridge bkf-br0
                    with address 10.77.0.<n> (n in 30..39 only) and no default route: nothing
                    beyond the test bridge is reachable (a call to real AWS fails at once)
  user data         cloud-init's NoCloud seed (/var/lib/cloud/seed/nocloud/user-data): the gzipped
                    bytes of the instance's ``userDataBase64`` as the program renders it under mocks
  EBS data volume   a sparse file on a loop device, bound into the container; a TEST-ONLY unit
                    (bkf-test-ebs.service) does udev's job: the /dev/disk/by-id/nvme-Amazon_Elastic_
                    Block_Store_<vol> and by-uuid links, and mounting fstab's ext4 entries before
                    local-fs.target (systemd in a container does not mount fstab's device entries)
  AWS APIs          moto's server (toolchain/aws-emu/requirements.txt) on 127.0.0.1:5000 of the node's
                    network namespace: SSM Parameter Store and EC2 (the instance and its user data).
                    The node reaches it through AWS_ENDPOINT_URL (systemd's DefaultEnvironment: every
                    service, cloud-init and the SSM stand-in below, sees it)
  IMDS              tests/ec2/imds.py on 169.254.169.254:80 of that namespace: IMDSv2 only (a GET
                    without a session token gets 401), user data read from moto, instance-profile
                    credentials for the node's AWS CLI
  SSM Run Command   moto has no associations: the association's command (taken from the program
                    under mocks) runs as a transient service under the node's systemd (systemd-run),
                    as root, like the SSM agent's children
  BuildKit release  GitHub is unreachable: this machine's buildkitd/buildctl (local/artifact.sh) are
                    pre-placed at /opt/buildkit-farm/buildkit-<version>-<sha256>/bin, where
                    install_buildkit finds them and skips the download. The real release also
                    bundles buildkit-runc and the CNI plugins; here they are Debian's runc and
                    containernetworking-plugins in the rootfs (bkf-node.sh looks for both).

nspawn settings an EC2 VM does not need, and why (runc inside the container):
  SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1   this host mounts cgroup v1 controllers, which nspawn hands
                    to the container read-only (runc: "mkdir /sys/fs/cgroup/cpuset/buildkit/...:
                    read-only file system"); the container gets cgroup v2 instead, as AL2023 has
  --capability=CAP_NET_ADMIN,CAP_BPF,CAP_PERFMON   iptables (bkf-node.sh's firewall), CNI bridges
                    and runc's cgroup v2 device filter (bpf_prog_query(BPF_CGROUP_DEVICE))
  --system-call-filter=add_key keyctl request_key bpf   nspawn's seccomp filter refuses them (runc:
                    "unable to join session keyring: ... operation not permitted")
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from harness.hosts import ROOT, run

BRIDGE = "bkf-br0"
SUBNET = "10.77.0"
#: the only addresses this tier gives its containers
INDEXES = range(30, 40)
MOTO_PORT = 5000
IMDS_ADDR = "169.254.169.254"
#: moto's server and the AWS CLI, shared with the wake tests (toolchain/steps/aws_emu_venv.sh)
EC2_VENV = ROOT / ".aws-emu-venv"
NSPAWN_ENV = {"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
NSPAWN_FLAGS = ["--register=no", "--keep-unit", "--console=read-only",
                "--capability=CAP_NET_ADMIN,CAP_BPF,CAP_PERFMON",
                "--system-call-filter=add_key keyctl request_key bpf"]
LOCK = Path("/run/bkf-ec2/tier.lock")
#: nspawn's exit status when the container rebooted
REBOOT_EXIT = 133

TEST_EBS_SCRIPT = """#!/bin/sh
# TEST ONLY (tests/ec2): udev's and systemd-fstab's job on a real instance. Links the EBS volume's
# stable names to the loop device and mounts fstab's ext4 entries before local-fs.target.
set -eu
. /etc/bkf-test/ebs.env
mkdir -p /dev/disk/by-id /dev/disk/by-uuid
ln -sfn "$LOOP" "/dev/disk/by-id/$BY_ID"
uuid=$(blkid -s UUID -o value "$LOOP" || true)
if [ -n "$uuid" ]; then ln -sfn "$LOOP" "/dev/disk/by-uuid/$uuid"; fi
mount -a -t ext4
"""

TEST_EBS_UNIT = """# TEST ONLY (tests/ec2): see /usr/local/sbin/bkf-test-ebs
[Unit]
Description=TEST ONLY: EBS device links and fstab mounts (no udev in a container)
DefaultDependencies=no
Before=local-fs.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/bkf-test-ebs
[Install]
WantedBy=local-fs.target
"""


def ec2_tool(name: str) -> str:
    p = EC2_VENV / "bin" / name
    if not p.exists():
        raise AssertionError(f"{p} missing: run toolchain/bootstrap.sh (step aws-emu-venv)")
    return str(p)


def wait_port(netns: str, host: str, port: int, what: str, proc: subprocess.Popen[bytes],
              timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}")
        r = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "bash", "-c",
                            f"exec 3<>/dev/tcp/{host}/{port}"], capture_output=True)
        if r.returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} did not listen on {host}:{port} in {timeout}s")


@contextmanager
def exclusive(timeout: float = 1800) -> Iterator[None]:
    """One run of this tier at a time on this machine (another worktree's waits): its addresses and
    names are fixed, and ``sweep`` is only safe while no other run is alive. A killed run's lock goes
    with its process."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as f:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"another run of tests/ec2 holds {LOCK} for over {timeout}s") from None
                time.sleep(2)
        yield


def sweep() -> None:
    """Remove what an interrupted run of this tier left: only its own names (bkf-ec2-30..39).
    Call it holding ``exclusive()``."""
    nss = run(["ip", "netns", "list"], check=False).stdout.split()
    for n in INDEXES:
        ns = f"bkf-ec2-{n}"
        if ns in nss:
            for pid in run(["ip", "netns", "pids", ns], check=False).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
            run(["ip", "netns", "del", ns], check=False)
    for line in run(["findmnt", "-rn", "-o", "TARGET"], check=False).stdout.splitlines():
        if "/bkf-ec2-node-" in line and line.endswith("/merged"):
            run(["umount", "-l", line], check=False)
    for line in run(["losetup", "-a"], check=False).stdout.splitlines():
        if "/bkf-ec2-node-" in line and line.rstrip(")").endswith("ebs.img"):
            run(["losetup", "-d", line.split(":")[0]], check=False)


@dataclass
class Ec2Node:
    """One instance. ``create`` makes its world, ``boot`` starts it, ``destroy`` removes everything."""

    index: int
    work: Path
    rootfs: Path
    user_data: bytes
    volume_id: str
    region: str
    artifact: Path
    buildkit_dir: str
    instance_id: str = ""
    loop: str = ""
    nspawn: subprocess.Popen[bytes] | None = None
    boots: int = 0
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    cleanups: list[Sequence[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        assert self.index in INDEXES, self.index

    @property
    def netns(self) -> str:
        return f"bkf-ec2-{self.index}"

    @property
    def addr(self) -> str:
        return f"{SUBNET}.{self.index}"

    @property
    def merged(self) -> Path:
        return self.work / "merged"

    @property
    def imds_log(self) -> Path:
        return self.work / "imds.jsonl"

    def aws_env(self) -> dict[str, str]:
        return {**os.environ, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{MOTO_PORT}", "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": self.region}

    def aws(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The real AWS CLI against the node's moto (run in the node's network namespace)."""
        return run(["nsenter", f"--net=/run/netns/{self.netns}", ec2_tool("aws"), *args], env=self.aws_env(),
                   check=check, timeout=120)

    # ------------------------------------------------------------------ world
    def create(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self._network()
        self._overlay()
        self._volume()
        self._moto()
        self._instance()
        self._seed()
        self.start_imds()

    def _network(self) -> None:
        if run(["ip", "link", "show", BRIDGE], check=False).returncode != 0:
            run(["ip", "link", "add", BRIDGE, "type", "bridge"])
            run(["ip", "addr", "add", f"{SUBNET}.1/24", "dev", BRIDGE])
        run(["ip", "link", "set", BRIDGE, "up"])
        ns, veth = self.netns, f"{self.netns}-r"
        run(["ip", "netns", "add", ns])
        self.cleanups.append(["ip", "netns", "del", ns])
        # Forwarding on in the node's namespace, as buildkitd's CNI bridge plugin turns it on at its
        # first start on an instance: under nspawn /proc/sys is read-only ("failed to enable
        # forwarding: ... read-only file system", and the daemon exits). A new namespace inherits
        # the root one's value, which other tiers change (dockerd turns it on, local/k8s.sh down
        # puts back what its up found): the EC2 tier run after the k8s tier had it off.
        run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        run(["ip", "link", "set", veth, "master", BRIDGE, "up"])
        for cmd in (["addr", "add", f"{self.addr}/24", "dev", "eth0"], ["link", "set", "eth0", "up"],
                    # no default route: the node reaches the host's bridge address and nothing beyond
                    ["link", "set", "lo", "up"],
                    # the instance metadata address, served by tests/ec2/imds.py
                    ["addr", "add", f"{IMDS_ADDR}/32", "dev", "lo"]):
            run(["ip", "-n", ns, *cmd])

    def _overlay(self) -> None:
        for d in ("upper", "ovl-work", "merged"):
            (self.work / d).mkdir(exist_ok=True)
        run(["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={self.rootfs},upperdir={self.work / 'upper'},workdir={self.work / 'ovl-work'}",
             str(self.merged)])
        self.cleanups.append(["umount", "-l", str(self.merged)])

    def _volume(self) -> None:
        img = self.work / "ebs.img"
        run(["truncate", "-s", "20G", str(img)])
        self.loop = run(["losetup", "-f", "--show", str(img)]).stdout.strip()
        self.cleanups.append(["losetup", "-d", self.loop])

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with open(self.work / f"{name}.log", "ab") as log:
            p = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.netns}", *argv], stdout=log, stderr=log,
                                 stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.procs[name] = p
        return p

    def _moto(self) -> None:
        p = self._spawn("moto", [ec2_tool("moto_server"), "-H", "127.0.0.1", "-p", str(MOTO_PORT)])
        wait_port(self.netns, "127.0.0.1", MOTO_PORT, "moto_server", p)

    def _instance(self) -> None:
        """The instance in the EC2 emulator, with the user data as RunInstances gets it."""
        ud = self.work / "user-data.gz"
        ud.write_bytes(self.user_data)
        self.instance_id = self.aws("ec2", "run-instances", "--image-id", "ami-12c6146b", "--instance-type",
                                    "c7i.2xlarge", "--user-data", f"fileb://{ud}", "--query",
                                    "Instances[0].InstanceId", "--output", "text").stdout.strip()

    def set_user_data(self, data: bytes) -> None:
        """A changed payload, applied as on EC2: stop, ModifyInstanceAttribute userData, start."""
        f = self.work / "user-data.next.gz"
        f.write_bytes(data)
        self.aws("ec2", "stop-instances", "--instance-ids", self.instance_id)
        # (CLI v1 cannot pass a binary blob nested in a structure from fileb://; the JSON form takes the
        # base64 text, and current_user_data() reads back what EC2 now holds)
        value = json.dumps({"Value": base64.b64encode(data).decode()})
        self.aws("ec2", "modify-instance-attribute", "--instance-id", self.instance_id, "--user-data", value)
        self.aws("ec2", "start-instances", "--instance-ids", self.instance_id)

    def current_user_data(self) -> bytes:
        out = self.aws("ec2", "describe-instance-attribute", "--instance-id", self.instance_id, "--attribute",
                       "userData", "--query", "UserData.Value", "--output", "text").stdout.strip()
        return base64.b64decode(out)

    def start_imds(self, role: bool = True) -> None:
        old = self.procs.pop("imds", None)
        if old is not None:
            old.kill()
            old.wait()
        argv = [ec2_tool("python"), str(Path(__file__).with_name("imds.py")), "--listen", f"{IMDS_ADDR}:80",
                "--moto", f"http://127.0.0.1:{MOTO_PORT}", "--region", self.region,
                "--instance-id", self.instance_id, "--log", str(self.imds_log)]
        p = self._spawn("imds", argv + ([] if role else ["--no-role"]))
        wait_port(self.netns, IMDS_ADDR, 80, "imds stand-in", p)

    def imds_requests(self) -> list[dict[str, object]]:
        if not self.imds_log.exists():
            return []
        return [json.loads(line) for line in self.imds_log.read_text().splitlines()]

    def _seed(self) -> None:
        m = self.merged
        seed = m / "var/lib/cloud/seed/nocloud"
        seed.mkdir(parents=True)
        (seed / "user-data").write_bytes(self.user_data)
        (seed / "meta-data").write_text(f"instance-id: {self.instance_id}\nlocal-hostname: bkf-ec2-{self.index}\n")
        conf = m / "etc/systemd/system.conf.d"
        conf.mkdir(parents=True)
        (conf / "bkf-test-aws-endpoint.conf").write_text(
            "# TEST ONLY (tests/ec2): the AWS CLI on this node talks to the emulator\n"
            f"[Manager]\nDefaultEnvironment=AWS_ENDPOINT_URL=http://127.0.0.1:{MOTO_PORT}\n")
        (m / "etc/bkf-test").mkdir()
        by_id = f"nvme-Amazon_Elastic_Block_Store_{self.volume_id.replace('-', '')}"
        (m / "etc/bkf-test/ebs.env").write_text(f"LOOP={self.loop}\nBY_ID={by_id}\n")
        script = m / "usr/local/sbin/bkf-test-ebs"
        script.write_text(TEST_EBS_SCRIPT)
        script.chmod(0o755)
        (m / "etc/systemd/system/bkf-test-ebs.service").write_text(TEST_EBS_UNIT)
        wants = m / "etc/systemd/system/local-fs.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / "bkf-test-ebs.service").symlink_to("/etc/systemd/system/bkf-test-ebs.service")
        # the release layout install_buildkit looks for before downloading
        dest = m / self.buildkit_dir.lstrip("/")
        dest.mkdir(parents=True)
        run(["tar", "-xzf", str(self.artifact), "-C", str(dest)])

    # ------------------------------------------------------------------ container
    def boot(self, timeout: float = 300) -> None:
        """Start the container and wait until cloud-init is done (user data or per-boot hook ran)."""
        assert self.nspawn is None or self.nspawn.poll() is not None
        self.boots += 1
        with open(self.work / f"console-{self.boots}.log", "wb") as console:
            self.nspawn = subprocess.Popen(
                ["systemd-nspawn", "-D", str(self.merged), "-b", *NSPAWN_FLAGS, f"--machine={self.netns}",
                 f"--network-namespace-path=/run/netns/{self.netns}", f"--bind={self.loop}"],
                stdout=console, stderr=console, stdin=subprocess.DEVNULL, env={**os.environ, **NSPAWN_ENV},
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.nspawn.poll() is not None:
                raise AssertionError(f"nspawn exited {self.nspawn.returncode}: {self.console()[-3000:]}")
            if self._leader():
                r = self.sh("cloud-init status --wait >/dev/null 2>&1; cloud-init status", check=False,
                            timeout=max(1.0, deadline - time.monotonic()))
                if "status:" in r.stdout:
                    return
            time.sleep(0.5)
        raise AssertionError(f"the node did not finish booting in {timeout}s: {self.console()[-3000:]}")

    def console(self) -> str:
        return (self.work / f"console-{self.boots}.log").read_text(errors="replace")

    def _leader(self) -> int | None:
        if self.nspawn is None:
            return None
        out = run(["pgrep", "-P", str(self.nspawn.pid)], check=False).stdout.split()
        for pid in out:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return int(pid)
            except OSError:
                continue
        return None

    def leader(self) -> int:
        pid = self._leader()
        assert pid, "the container is not running"
        return pid

    def sh(self, script: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """A root shell inside the container (all its namespaces)."""
        # (a session of its own: a `kill 0` inside must never reach this process's group)
        return run(["nsenter", "-t", str(self.leader()), "-a", "/bin/bash", "-c", script], check=check,
                   timeout=timeout, start_new_session=True)

    def ssm_run_command(self, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """What the SSM agent does with an AWS-RunShellScript command: a root child of a system service."""
        return self.sh(f"systemd-run --wait --pipe --collect --quiet /bin/bash -c {_q(command)}",
                       check=check)

    def reboot(self) -> int:
        """`systemctl reboot` inside; nspawn exits 133 and the instance is started again. Returns the exit code."""
        assert self.nspawn is not None
        self.sh("systemctl reboot", check=False)
        try:
            code = self.nspawn.wait(timeout=180)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("the container did not go down on reboot") from e
        self.boot()
        return code

    def stop(self) -> None:
        p = self.nspawn
        if p is None or p.poll() is not None:
            return
        p.terminate()  # nspawn: SIGTERM powers the container off
        try:
            p.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)

    def destroy(self) -> None:
        """Everything create and boot made, in reverse; safe to call after any failure."""
        self.stop()
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
        for cmd in reversed(self.cleanups):
            run(cmd, check=False)
        self.cleanups.clear()
        # the big parts (the volume's image, the overlay's writes); the logs stay for a failed run
        if not run(["findmnt", "-rn", str(self.merged)], check=False).stdout:
            for d in ("upper", "ovl-work"):
                shutil.rmtree(self.work / d, ignore_errors=True)
        if not run(["losetup", "-j", str(self.work / "ebs.img")], check=False).stdout:
            (self.work / "ebs.img").unlink(missing_ok=True)


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def tcp_open(host: str, port: int, timeout: float = 2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
