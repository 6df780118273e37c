"""The cluster tier's machinery: the single-node cluster (local/k8s.sh), kubectl, the stack the
program renders for it, and a stand-in for Service routing.

Services: the cluster runs no kube-proxy (it would rewrite this shared machine's firewall), so a
ClusterIP gets no routing. ``ServiceProxy`` does what kube-proxy would for one Service: it listens
on the node's endpoint address (the address the program's config gives the node, on the cluster's
bridge) and sends each new connection to a *ready* address of the Service's EndpointSlices, which
the endpoint controller fills from the Service's selector and the pods' readiness. So a pod that
fails readiness (draining) gets no new connections, and a replaced pod is found again.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.hosts import run
from harness.versions import versions_env
from tests.support import rendered

ROOT = Path(__file__).resolve().parents[2]
K8S_SH = ROOT / "local" / "k8s.sh"
BRIDGE = "bkf-k8s0"
NAMESPACE = "bkf-k8s-tier"
STORAGE_CLASS = "bkf-local"
#: the addresses clients dial (nodes[].host), on the cluster's bridge
NODE_HOSTS = {"amd64-1": "10.79.0.11", "amd64-2": "10.79.0.12"}
ALLOWED = "10.79.0.0/24"


def cache_root() -> Path:
    return Path(os.environ.get("BUILDKIT_FARM_CACHE", Path.home() / ".cache" / "buildkit-farm"))


def kubectl_path() -> Path:
    return cache_root() / f"kubernetes-{versions_env()['KUBERNETES_VERSION']}" / "kubectl"


@dataclass
class Cluster:
    state: Path
    image_ref: str
    timings: dict[str, float] = field(default_factory=dict)
    #: the python image local/k8s.sh built and imported (kubernetes.metricsImage)
    python_ref: str = ""

    @property
    def kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run([str(kubectl_path()), "--kubeconfig", str(self.kubeconfig), *args], check=check,
                   input=input, timeout=timeout)

    def get(self, kind: str, name: str, namespace: str | None = NAMESPACE) -> dict[str, Any]:
        ns = ["-n", namespace] if namespace else []
        out: dict[str, Any] = json.loads(
            self.kubectl("get", kind, name, *ns, "-o", "json", "--show-managed-fields").stdout)
        return out

    def exists(self, kind: str, name: str, namespace: str = NAMESPACE) -> bool:
        return self.kubectl("get", kind, name, "-n", namespace, check=False).returncode == 0

    def apply(self, objects: list[dict[str, Any]]) -> tuple[str, str]:
        """Server-side apply of exactly these objects (admission, defaulting and strict field
        validation by the API), namespaces first, as Pulumi orders them (the other objects depend on
        the namespace). Returns what was applied and the API's warnings (stderr)."""
        out = err = ""
        for batch in ([o for o in objects if o["kind"] == "Namespace"],
                      [o for o in objects if o["kind"] != "Namespace"]):
            for attempt in range(10):
                r = self.kubectl("apply", "--server-side", "--field-manager=bkf-k8s-tier", "-f", "-",
                                 input=yaml.safe_dump_all(batch, sort_keys=False), check=False)
                # a namespace just created can be briefly unknown to admission: retry that only
                if r.returncode == 0 or "NotFound" not in r.stderr or attempt == 9:
                    break
                time.sleep(1)
            assert r.returncode == 0, r.stdout + r.stderr
            out += r.stdout
            err += r.stderr
        return out, err

    def wait_ready(self, pod: str, timeout: int = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.kubectl("get", "pod", pod, "-n", NAMESPACE, "-o", "json", check=False)
            if r.returncode == 0:
                p: dict[str, Any] = json.loads(r.stdout)
                conds = {c["type"]: c["status"] for c in p.get("status", {}).get("conditions", [])}
                if conds.get("Ready") == "True" and not p["metadata"].get("deletionTimestamp"):
                    return p
            time.sleep(1)
        raise AssertionError(f"pod {pod} not Ready after {timeout}s:\n" + self.describe(pod))

    def describe(self, pod: str) -> str:
        d = self.kubectl("describe", "pod", pod, "-n", NAMESPACE, check=False)
        logs = self.kubectl("logs", pod, "-n", NAMESPACE, "--tail=30", check=False)
        # a pod that was never made: the StatefulSet controller's events say why (e.g. admission)
        events = self.kubectl("get", "events", "-n", NAMESPACE, "--sort-by=.lastTimestamp", check=False)
        return ((d.stdout + d.stderr)[-3000:] + "\n--- logs\n" + (logs.stdout + logs.stderr)[-3000:]
                + "\n--- events\n" + events.stdout[-3000:])

    def wait_gone(self, pod: str, uid: str, timeout: int = 300) -> None:
        """Until the pod object with this uid no longer exists (a replacement may have its name)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.kubectl("get", "pod", pod, "-n", NAMESPACE, "-o", "jsonpath={.metadata.uid}", check=False)
            if r.returncode != 0 or r.stdout.strip() != uid:
                return
            time.sleep(0.5)
        raise AssertionError(f"pod {pod} ({uid}) still there after {timeout}s")

    def exec(self, pod: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.kubectl("exec", "-n", NAMESPACE, pod, "-c", "buildkitd", "--", *argv, check=check)


def _down(state: Path) -> None:
    run(["bash", str(K8S_SH), "down", str(state)], check=False, timeout=300)


@contextmanager
def running_cluster(state: Path, images: Path, timings: dict[str, float]) -> Iterator[Cluster]:
    """The cluster up (fresh state under ``state``), always torn down at the end, even on failure.
    Set-up and teardown times go into ``timings`` (the cluster's ``timings`` is the same dict)."""
    t0 = time.monotonic()
    try:
        run(["bash", str(K8S_SH), "images", str(images)], timeout=300)
        t1 = time.monotonic()
        timings["images built"] = t1 - t0
        run(["bash", str(K8S_SH), "up", str(state)], timeout=600, env={**os.environ, "BKF_K8S_IMAGES": str(images)})
        timings["cluster up (warm binaries)"] = time.monotonic() - t1
        yield Cluster(state, (images / "buildkit.ref").read_text().strip(), timings,
                      (images / "python.ref").read_text().strip())
    finally:
        t2 = time.monotonic()
        _down(state)
        timings["cluster down"] = time.monotonic() - t2


def busybox_layout(d: Path) -> str:
    """A busybox base image as an OCI layout (no registry, no pull), for `FROM busybox`."""
    root = d / "bbroot"
    (root / "bin").mkdir(parents=True)
    (root / "tmp").mkdir(mode=0o1777)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    for a in ("sh", "echo", "cat", "cp", "sleep", "ls"):
        (root / "bin" / a).symlink_to("busybox")
    digest = run(["python3", str(ROOT / "local" / "k8s" / "mkoci.py"), str(root), str(d / "bb.tar"),
                  '{"Cmd":["/bin/sh"]}', "docker.io/library/busybox:bkf-local"]).stdout.strip()
    layout = d / "bblayout"
    layout.mkdir()
    run(["tar", "-xf", str(d / "bb.tar"), "-C", str(layout)])
    return f"oci-layout://{layout}@{digest}"


def stack_yaml(image_ref: str, **kubernetes: Any) -> dict[str, Any]:
    """Pulumi.k8s.yaml pointed at this cluster: its nodes dial the bridge addresses, ClusterIP
    Services, the cluster's StorageClass, and the locally built image pinned by digest (as a user
    with a private registry would pin theirs)."""
    y = rendered.k8s_stack_yaml()
    c = y["config"]
    c["buildkit-farm:nodes"] = [{"name": n, "platform": "linux/amd64", "host": h} for n, h in NODE_HOSTS.items()]
    c["buildkit-farm:allowedCidrs"] = [ALLOWED]
    c["buildkit-farm:volume"] = {"sizeGb": 20, "protect": False}
    c["buildkit-farm:pki"] = {**c["buildkit-farm:pki"], "clients": ["ci"]}
    c["buildkit-farm:builder"] = {"enabled": True, "name": "bkf-k8s-tier"}
    c["buildkit-farm:buildkit"] = {"image": image_ref, "drainTimeoutSeconds": 120}
    c["buildkit-farm:kubernetes"] = {
        "namespace": NAMESPACE, "serviceType": "ClusterIP", "storageClass": STORAGE_CLASS,
        # a 2-core machine: two nodes must fit
        "cpuRequest": "100m", "memoryRequest": "256Mi", "cpuLimit": "2", "memoryLimit": "2Gi", **kubernetes}
    return y


class ServiceProxy:
    """kube-proxy's job for one Service, in user space (see the module docstring)."""

    def __init__(self, cluster: Cluster, service: str, listen: tuple[str, int], port_name: str = "buildkitd") -> None:
        # port_name: the Service port to route, by name (an EndpointSlice lists ports in no set order)
        self.cluster, self.service, self.port_name = cluster, service, port_name
        self.sock = socket.create_server(listen, reuse_port=False)
        self.sock.settimeout(0.5)
        self.conns: list[socket.socket] = []
        self.stopping = False
        self.routed: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def endpoint(self) -> tuple[str, int] | None:
        r = self.cluster.kubectl("get", "endpointslices", "-n", NAMESPACE, "-l",
                                 f"kubernetes.io/service-name={self.service}", "-o", "json", check=False)
        if r.returncode != 0:
            return None
        for s in json.loads(r.stdout)["items"]:
            port = next((p.get("port") for p in s.get("ports") or [] if p.get("name") == self.port_name), None)
            for e in s.get("endpoints") or []:
                if e.get("conditions", {}).get("ready") and port:
                    return e["addresses"][0], int(port)
        return None

    def _serve(self) -> None:
        while not self.stopping:
            try:
                client, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        ep = self.endpoint()
        if ep is None:
            client.close()  # no ready endpoint: refused, as kube-proxy does
            return
        try:
            upstream = socket.create_connection(ep, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        self.routed.append(ep[0])
        self.conns += [client, upstream]
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(a, b), daemon=True).start()

    def close(self) -> None:
        self.stopping = True
        self.sock.close()
        for c in self.conns:
            with suppress(OSError):
                c.close()
        self.thread.join(timeout=5)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@contextmanager
def service_proxies(cluster: Cluster, port: int) -> Iterator[dict[str, ServiceProxy]]:
    proxies: dict[str, ServiceProxy] = {}
    try:
        for node, host in NODE_HOSTS.items():
            run(["ip", "addr", "replace", f"{host}/32", "dev", BRIDGE])
            proxies[node] = ServiceProxy(cluster, node, (host, port))
        yield proxies
    finally:
        for p in proxies.values():
            p.close()
        for host in NODE_HOSTS.values():
            run(["ip", "addr", "del", f"{host}/32", "dev", BRIDGE], check=False)


def poll(what: str, fn: Callable[[], Any], timeout: float = 120, every: float = 1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"{what}: not after {timeout}s")


def cache_dockerfile(cache_id: str) -> str:
    """A two-stage build whose RUN appends its STAMP build-arg to a cache mount (`cache_id`) and
    exports what the mount holds: a rebuild with a new stamp shows the mount survived."""
    return f"""\
FROM busybox
ARG STAMP
RUN --mount=type=cache,id={cache_id},target=/cache echo "$STAMP" >> /cache/stamps && cp /cache/stamps /stamps
FROM scratch
COPY --from=0 /stamps /stamps
"""
