"""Real binaries, test hosts (local/testhosts.sh), openssl certificates, the artifact: every tier and the bench."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import versions

ROOT = Path(__file__).resolve().parents[1]
TESTHOSTS = ROOT / "local" / "testhosts.sh"


def need(*binaries: str) -> dict[str, str]:
    """Absolute paths of real binaries; a missing one fails the test (never a silent skip)."""
    found = {b: shutil.which(b) for b in binaries}
    missing = [b for b, p in found.items() if p is None]
    if missing:
        message = f"missing {missing}: run toolchain/bootstrap.sh and source .toolchain/env.sh"
        if "pytest" in sys.modules:  # under pytest: just this message, no traceback
            import pytest

            pytest.fail(message)
        raise RuntimeError(message)
    return {b: p for b, p in found.items() if p is not None}


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 300,
        **kw: Any) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(argv), text=True, capture_output=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{argv[:3]}... exited {r.returncode}\n"
                             f"stdout:\n{r.stdout[-4000:]}\nstderr:\n{r.stderr[-4000:]}")
    return r


@dataclass(frozen=True)
class Host:
    name: str  # h1, h2 ...
    addr: str


@dataclass(frozen=True)
class HostSet:
    hosts: tuple[Host, ...]
    state: Path
    #: size of each host's loop-device data volume (testhosts.sh's default when None)
    data_gb: int | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {**os.environ, "BKF_TEST_HOSTS": " ".join(h.name for h in self.hosts),
               "BKF_LOCAL_STATE": str(self.state)}
        if self.data_gb is not None:
            env["BKF_TEST_DATA_GB"] = str(self.data_gb)
        return env

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def ssh(self, host: Host, command: str, *, stdin: str | None = None, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run(["bash", str(TESTHOSTS), "ssh", host.name, command], input=stdin, env=self.env,
                   check=check, timeout=timeout)

    def install(self, host: Host, artifact: Path, payload: str, bundle: str) -> str:
        """Copy the artifact and run the node payload over SSH (the certificate bundle on stdin), as
        the SshNode component does; the payload's log."""
        with open(artifact, "rb") as f:
            subprocess.run(["bash", str(TESTHOSTS), "ssh", host.name, "mkdir -p /opt/buildkit-farm/artifacts && "
                            f"cat > /opt/buildkit-farm/artifacts/{artifact.name}"],
                           stdin=f, env=self.env, check=True, timeout=120)
        return self.ssh(host, payload, stdin=bundle).stderr

    def netns_pids(self, host: Host) -> list[str]:
        return run(["ip", "netns", "pids", f"bkf-{host.name}"], check=False).stdout.split()

    @contextmanager
    def packets_dropped(self, host: Host, port: int) -> Iterator[None]:
        """Every TCP packet to ``port`` dropped inside the host (its network namespace), as a security
        group change or a network partition does: no refusal, no reset, silence. Removed after the block."""
        iptables = ["ip", "netns", "exec", f"bkf-{host.name}", "iptables"]
        rule = ["INPUT", "-p", "tcp", "--dport", str(port), "-j", "DROP"]
        run([*iptables, "-I", *rule])
        try:
            yield
        finally:
            run([*iptables, "-D", *rule])

    def processes(self, host: Host) -> list[str]:
        """Command lines of the processes in a host's network namespace (hosts share the PID namespace,
        so `pgrep` inside a host would also see the other hosts' processes)."""
        out = []
        for pid in self.netns_pids(host):
            try:
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip())
            except OSError:
                continue  # exited meanwhile
        return out


@contextmanager
def running_hosts(names: Sequence[str], state: Path, data_gb: int | None = None,
                  no_sftp: Sequence[str] = ()) -> Iterator[HostSet]:
    """Test hosts up for the block, down after it (``no_sftp``: hosts whose sshd has no sftp subsystem)."""
    hs = HostSet(tuple(Host(n, f"10.77.0.{10 + int(n[1:])}") for n in names), state, data_gb)
    run(["bash", str(TESTHOSTS), "up"], env={**hs.env, "BKF_TESTHOSTS_NO_SFTP": " ".join(no_sftp)})
    try:
        yield hs
    finally:
        run(["bash", str(TESTHOSTS), "down"], env=hs.env, check=False)


def children_started(parent: int, comm: str, seen: set[int]) -> list[float]:
    """Start times (epoch seconds) of the children of ``parent`` named ``comm`` that are not in ``seen``
    (they are added to it). Test hosts share this machine's PID namespace, so a host's processes are here."""
    boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                if line.startswith("btime "))
    tick = os.sysconf("SC_CLK_TCK")
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, tail = stat.read_text().rsplit(")", 1)
        except OSError:
            continue  # exited meanwhile
        fields = tail.split()  # state, ppid, ...; starttime (field 22 of the file) is fields[19]
        pid = int(stat.parent.name)
        if head.split("(", 1)[1] == comm and int(fields[1]) == parent and pid not in seen:
            seen.add(pid)
            found.append(boot + int(fields[19]) / tick)
    return found


def make_artifact(dest_dir: Path) -> Path:
    """A release-shaped buildkit tarball of this machine's binaries (local/artifact.sh, as the local farm uses)."""
    need("buildkitd", "buildctl")
    return Path(run(["bash", str(ROOT / "local" / "artifact.sh"), str(dest_dir),
                     versions.BUILDKIT_VERSION]).stdout.strip())


def sample_context(ctx: Path) -> Path:
    """The local farm's sample build (local/sample, with rootfs-<arch>.tar from local/rootfs.sh) in
    ``ctx``, made on the first call."""
    if not ctx.exists():
        shutil.copytree(ROOT / "local" / "sample", ctx)
        run(["bash", str(ROOT / "local" / "rootfs.sh"), str(ctx)])
    return ctx


@dataclass(frozen=True)
class Pem:
    cert: Path
    key: Path


def https_get(addr: str, port: int, ca: Path, client: Pem | None, path: str = "/metrics", method: str = "GET",
              timeout: float = 30) -> tuple[int, str]:
    """One HTTP/1.1 request over TLS verified against `ca`, with `client`'s cert if given (a node's
    metrics listener): (status, body). Raw sockets, so a refused handshake raises as it happens."""
    ctx = ssl.create_default_context(cafile=str(ca))
    if client:
        ctx.load_cert_chain(str(client.cert), str(client.key))
    with socket.create_connection((addr, port), timeout=timeout) as raw, \
            ctx.wrap_socket(raw, server_hostname=addr) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


def openssl_pki(d: Path, servers: dict[str, list[str]], clients: Sequence[str] = ("ci",),
                ca_name: str = "ca") -> tuple[Path, dict[str, Pem], dict[str, Pem]]:
    """A CA (P-256), server certs (serverAuth, SANs as given: 'IP:...'/'DNS:...') and client certs (clientAuth)."""
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca = d / f"{ca_name}.key", d / f"{ca_name}.pem"
    run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(ca_key)])
    run(["openssl", "req", "-x509", "-new", "-key", str(ca_key), "-subj", f"/CN={ca_name}", "-days", "2",
         "-out", str(ca), "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])

    def leaf(name: str, sans: list[str], eku: str) -> Pem:
        key, csr, pem, ext = (d / f"{name}.key", d / f"{name}.csr", d / f"{name}.pem", d / f"{name}.ext")
        run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)])
        run(["openssl", "req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr)])
        ext.write_text(f"subjectAltName={','.join(sans)}\nextendedKeyUsage={eku}\n"
                       "keyUsage=digitalSignature,keyEncipherment\n")
        run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "2", "-out", str(pem), "-extfile", str(ext)])
        return Pem(pem, key)

    srv = {n: leaf(f"{ca_name}-server-{n}", sans, "serverAuth") for n, sans in servers.items()}
    cli = {c: leaf(f"{ca_name}-client-{c}", [f"DNS:{c}"], "clientAuth") for c in clients}
    return ca, srv, cli


def buildctl(addr: str, server_name: str, ca: Path | None, client: Pem | None, *args: str,
             check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    argv = [need("buildctl")["buildctl"], "--addr", addr, "--tlsservername", server_name]
    if ca:
        argv += ["--tlscacert", str(ca)]
    if client:
        argv += ["--tlscert", str(client.cert), "--tlskey", str(client.key)]
    return run([*argv, *args], check=check, timeout=timeout)
