"""The reliability suite's farm: test hosts running the program's own node payload (certs on stdin),
a PKI made with `cryptography` (so the bad clients can be made too), and buildctl builds over mTLS."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from components.node.buildkitd_toml import render_buildkitd_toml
from components.node.payload import render_cert_bundle, render_payload, sha256_file
from components.node.settings import NodeSettings
from harness.hosts import ROOT, Host, HostSet, make_artifact, need, run
from tests.support import pki

PORT = 1234
PLATFORM = "linux/amd64"


@dataclass(frozen=True)
class Client:
    """A client's files: CA to check the server with, its cert and key (mode 0600)."""

    ca: Path
    cert: Path
    key: Path


def write_client(d: Path, name: str, ca_pem: str, issued: pki.Issued) -> Client:
    d.mkdir(parents=True, exist_ok=True)
    c = Client(d / f"{name}-ca.pem", d / f"{name}.pem", d / f"{name}.key")
    c.ca.write_text(ca_pem)
    c.cert.write_text(issued.cert_pem)
    c.key.touch(mode=0o600)
    c.key.write_text(issued.key_pem)
    return c


@dataclass
class Farm:
    hosts: HostSet
    dir: Path
    ca: pki.Issued
    servers: dict[str, pki.Issued]
    client: Client
    artifact: Path
    volume_gb: int = 20
    _rootfs: Path | None = field(default=None, repr=False)

    @classmethod
    def make(cls, hosts: HostSet, d: Path, volume_gb: int = 20) -> Farm:
        need("buildkitd", "buildctl", "openssl", "ssh")
        ca = pki.make_ca("bkf reliability CA")
        servers = {h.name: pki.make_server(ca, [h.addr]) for h in hosts.hosts}
        client = write_client(d / "pki", "client", ca.cert_pem, pki.make_client(ca, "ci"))
        return cls(hosts, d, ca, servers, client, make_artifact(d / "artifacts"), volume_gb)

    # ------------------------------------------------------------ nodes
    def host(self, name: str) -> Host:
        return self.hosts.host(name)

    def endpoint(self, host: str) -> str:
        return f"tcp://{self.host(host).addr}:{PORT}"

    def payload(self, host: str, action: str = "install") -> str:
        settings = NodeSettings(
            node_name=f"rel-{host}", platform=PLATFORM, buildkit_version="v0.32.2",
            buildkit_sha256=sha256_file(self.artifact), port=PORT, cert_source="stdin",
            artifact=f"/opt/buildkit-farm/artifacts/{self.artifact.name}",
            data_device=f"/run/bkf-testhosts/{host}/data-device", stop_timeout_s=10)
        toml = render_buildkitd_toml(platform=PLATFORM, port=PORT, volume_gb=self.volume_gb)
        return render_payload(settings, toml, action)

    def install(self, host: str) -> str:
        """The node's install payload with its server cert (HostSet.install); its log."""
        s = self.servers[host]
        bundle = render_cert_bundle(self.ca.cert_pem, s.cert_pem, s.key_pem)
        return self.hosts.install(self.host(host), self.artifact, self.payload(host), bundle)

    def ssh(self, host: str, command: str, *, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self.hosts.ssh(self.host(host), command, check=check, timeout=timeout)

    def daemon_pid(self, host: str) -> str:
        return self.ssh(host, "cat /run/buildkit/buildkitd.pid 2>/dev/null || true").stdout.strip()

    def wait_serving(self, host: str, *, not_pid: str = "", attempts: int = 120) -> str:
        """Poll (0.5 s apart, bounded) until a daemon other than ``not_pid`` answers mTLS; its pid, or ''."""
        for _ in range(attempts):
            pid = self.daemon_pid(host)
            if pid and pid != not_pid and self.buildctl(host, "debug", "workers", check=False,
                                                        timeout=20).returncode == 0:
                return pid
            time.sleep(0.5)
        return ""

    # ------------------------------------------------------------ clients
    def buildctl(self, host: str, *args: str, client: Client | None = None, server_name: str | None = None,
                 check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        c = client or self.client
        argv = [need("buildctl")["buildctl"], "--addr", self.endpoint(host),
                "--tlsservername", server_name or self.host(host).addr, "--tlscacert", str(c.ca),
                "--tlscert", str(c.cert), "--tlskey", str(c.key), *args]
        return run(argv, check=check, timeout=timeout)

    def rootfs(self) -> Path:
        """rootfs-amd64.tar (busybox), made once per farm."""
        if self._rootfs is None:
            d = self.dir / "rootfs"
            run(["bash", str(ROOT / "local" / "rootfs.sh"), str(d)])
            self._rootfs = d / "rootfs-amd64.tar"
        return self._rootfs

    def context(self, name: str, dockerfile: str, files: dict[str, str] | None = None) -> Path:
        """A build context: the busybox rootfs as rootfs-amd64.tar, a Dockerfile and ``files``."""
        ctx = self.dir / "contexts" / name
        ctx.mkdir(parents=True, exist_ok=True)
        if not (ctx / "rootfs-amd64.tar").exists():
            os.link(self.rootfs(), ctx / "rootfs-amd64.tar")
        (ctx / "Dockerfile").write_text(dockerfile)
        for rel, text in (files or {}).items():
            (ctx / rel).write_text(text)
        return ctx

    def build_argv(self, host: str, ctx: Path, *, out: Path | None = None, build_args: dict[str, str] | None = None,
                   extra: tuple[str, ...] = ()) -> list[str]:
        c = self.client
        argv = [need("buildctl")["buildctl"], "--addr", self.endpoint(host), "--tlsservername",
                self.host(host).addr, "--tlscacert", str(c.ca), "--tlscert", str(c.cert), "--tlskey", str(c.key),
                "build", "--progress", "plain", "--frontend", "dockerfile.v0",
                "--local", f"context={ctx}", "--local", f"dockerfile={ctx}",
                "--opt", f"platform={PLATFORM}", *extra]
        for k, v in (build_args or {}).items():
            argv += ["--opt", f"build-arg:{k}={v}"]
        if out is not None:
            shutil.rmtree(out, ignore_errors=True)
            argv += ["--output", f"type=local,dest={out}"]
        return argv

    def build(self, host: str, ctx: Path, *, out: Path | None = None, build_args: dict[str, str] | None = None,
              extra: tuple[str, ...] = (), check: bool = True,
              timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run(self.build_argv(host, ctx, out=out, build_args=build_args, extra=extra), check=check,
                   timeout=timeout)
