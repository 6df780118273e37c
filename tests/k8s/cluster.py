"""The cluster tier's machinery: the single-node cluster (local/k8s.sh), kubectl, the stack the
program renders for it, and what its Services are dialled at.

Services are routed by the cluster's kube-proxy (iptables mode, in its own network namespace
``SVC_NETNS``: local/k8s.sh), and clients dial each node's Service at its ClusterIP from the root
namespace, where the tests, ``pulumi up`` and so the program's builder run (the root namespace
routes the Service range via kube-proxy's namespace). The program's config must name the address
clients dial (``nodes[].host``, which goes into the node's server cert) before the Services exist,
so the tier pins each node's ClusterIP with a MutatingAdmissionPolicy (``pin_cluster_ips``: a
cluster admin's address plan; the program's objects are unchanged) to ``NODE_HOSTS``, in the
Service range's static band (never handed out dynamically).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.hosts import run
from harness.versions import versions_env
from tests.support import rendered

ROOT = Path(__file__).resolve().parents[2]
K8S_SH = ROOT / "local" / "k8s.sh"
NAMESPACE = "bkf-k8s-tier"
STORAGE_CLASS = "bkf-local"
#: the addresses clients dial (nodes[].host): each node's Service's ClusterIP (pin_cluster_ips)
NODE_HOSTS = {"amd64-1": "10.81.0.11", "amd64-2": "10.81.0.12"}
ALLOWED = "10.79.0.0/24"
#: kube-proxy's network namespace (local/k8s.sh)
SVC_NETNS = "bkf-k8s-svc"


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


def _down(state: Path) -> subprocess.CompletedProcess[str]:
    return run(["bash", str(K8S_SH), "down", str(state)], check=False, timeout=300)


def pin_cluster_ips(cluster: Cluster) -> None:
    """Each node's Service gets its NODE_HOSTS address as ClusterIP when it is created (by the tier
    or by Pulumi), set by a MutatingAdmissionPolicy, so the address is known to the config first."""
    ips = json.dumps(NODE_HOSTS)
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy",
              "metadata": {"name": "bkf-k8s-tier-cluster-ips"},
              "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                               "operations": ["CREATE"], "resources": ["services"]}]},
                       "matchConditions": [{"name": "a-tier-node", "expression":
                                            f'request.namespace == "{NAMESPACE}" && object.metadata.name in {ips}'}],
                       "failurePolicy": "Fail", "reinvocationPolicy": "Never",
                       "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {"expression":
                                      f"Object{{spec: Object.spec{{clusterIP: {ips}[object.metadata.name]}}}}"}}]}}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicyBinding",
               "metadata": {"name": "bkf-k8s-tier-cluster-ips"},
               "spec": {"policyName": "bkf-k8s-tier-cluster-ips"}}
    cluster.kubectl("apply", "--server-side", "--field-manager=bkf-k8s-tier", "-f", "-",
                    input=yaml.safe_dump_all([policy, binding], sort_keys=False))


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
        cluster = Cluster(state, (images / "buildkit.ref").read_text().strip(), timings,
                          (images / "python.ref").read_text().strip())
        pin_cluster_ips(cluster)
        yield cluster
    finally:
        t2 = time.monotonic()
        down = _down(state)
        timings["cluster down"] = time.monotonic() - t2
        # kube-proxy's rules went with its namespace, and never were in the root one
        assert SVC_NETNS not in run(["ip", "netns", "list"]).stdout.split(), down.stderr[-2000:]
        assert "KUBE-* chains left" not in down.stderr, down.stderr[-2000:]
        assert not kube_proxy_chains(root_netns_chains()), root_netns_chains()


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


def ready_endpoints(cluster: Cluster, service: str) -> list[str]:
    """The *ready* addresses of the Service's EndpointSlices (what kube-proxy sends new connections
    to; the endpoint controller fills them from the selector and the pods' readiness)."""
    r = cluster.kubectl("get", "endpointslices", "-n", NAMESPACE, "-l", f"kubernetes.io/service-name={service}",
                        "-o", "json")
    return [a for sl in json.loads(r.stdout)["items"] for e in sl.get("endpoints") or []
            if e.get("conditions", {}).get("ready") for a in e["addresses"]]


def in_svc_netns(*argv: str) -> subprocess.CompletedProcess[str]:
    return run(["nsenter", f"--net=/run/netns/{SVC_NETNS}", *argv])


def dnat_counts(service: str) -> dict[str, int]:
    """kube-proxy's DNAT rules for the Service's endpoints -> connections each has taken (the nat
    table sees the first packet of a connection only), from its namespace's counters."""
    out: dict[str, int] = {}
    for line in in_svc_netns("iptables-save", "-c", "-t", "nat").stdout.splitlines():
        m = re.match(r"\[(\d+):\d+\] -A KUBE-SEP-\S+ .*--comment \"?" + re.escape(f"{NAMESPACE}/{service}:")
                     + r".* -j DNAT .*--to-destination (\S+)", line)
        if m:
            out[m.group(2)] = out.get(m.group(2), 0) + int(m.group(1))
    return out


def routed_to_pod(cluster: Cluster, node: str, port: int) -> int:
    """Connections kube-proxy's DNAT rule has sent to the node's pod, as it is now, on ``port`` (a
    new pod has a new rule, counting from 0)."""
    ip = cluster.get("pod", f"{node}-0")["status"]["podIP"]
    return dnat_counts(node).get(f"{ip}:{port}", 0)


def wait_routed(cluster: Cluster, node: str, port: int, timeout: float = 60) -> None:
    """Until kube-proxy has the DNAT rule from the node's Service to its pod's ``port``: a pod is Ready
    before kube-proxy's next sync writes it, and a dial in between found no route to the ClusterIP."""
    def rule() -> bool:
        return f"{cluster.get('pod', f'{node}-0')['status']['podIP']}:{port}" in dnat_counts(node)

    poll(f"kube-proxy's rule from {NAMESPACE}/{node} to its pod's port {port}", rule, timeout=timeout, every=0.5)


def rejected(service: str) -> dict[int, int]:
    """kube-proxy's REJECT rules for the Service's ports while it has no endpoint (port -> new
    connections refused), from its namespace's filter table; empty once an endpoint is ready."""
    out: dict[int, int] = {}
    for line in in_svc_netns("iptables-save", "-c", "-t", "filter").stdout.splitlines():
        m = re.match(r"\[(\d+):\d+\] -A KUBE-\S+ .*--comment \"?" + re.escape(f"{NAMESPACE}/{service}:")
                     + r"\S+ has no endpoints\"? .*--dport (\d+) .*-j REJECT", line)
        if m:
            out[int(m.group(2))] = out.get(int(m.group(2)), 0) + int(m.group(1))
    return out


def root_netns_chains() -> set[str]:
    """The KUBE-* chains of the root network namespace (iptables and ip6tables, every table)."""
    text = run(["iptables-save"]).stdout + run(["ip6tables-save"]).stdout
    return set(re.findall(r"^:(KUBE-\S+)", text, re.M))


def kube_proxy_chains(chains: set[str]) -> set[str]:
    """The chains kube-proxy makes, among these (kubelet's own three are not its)."""
    return chains - {"KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT"}


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
