"""Scale to zero on Kubernetes (components/backends/kubernetes/idle.py and the create script's
Kubernetes wake): the manifests, the watcher against a fake buildctl under busybox sh, and the wake
against a fake curl. The cluster tier (tests/k8s/test_scale_to_zero.py) runs it all for real."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from components.backends.kubernetes import idle as i
from components.backends.kubernetes.config import KubernetesNodeSpec, KubernetesSpec
from components.backends.kubernetes.pod import AWAIT_ANNOTATION, METADATA_DIGEST, statefulset_manifest
from components.builder.wake import KubernetesWake, render_wake
from components.node.idle import IdleStop

SPEC = KubernetesSpec(namespace="farm", idle_image="curl:1@sha256:" + "0" * 64)
NODE = KubernetesNodeSpec(name="amd64-1", platform="linux/amd64")
IDLE = IdleStop(after_s=60, every_s=5)


def sts() -> dict[str, Any]:
    return statefulset_manifest(SPEC, NODE, image="bk:1", buildkit_port=1234, volume_gb=20, drain_timeout_s=60,
                                config_sha256="c", tls_sha256="t")


def test_the_statefulset_leaves_replicas_to_the_scaler_and_only_the_scaler_gets_a_token() -> None:
    off = sts()
    on = i.with_idle_stop(off, SPEC, NODE, IDLE, SPEC.idle_image)
    assert off["spec"]["replicas"] == 1 and "replicas" not in on["spec"]
    assert "replicas" in sts()["spec"]  # the input was not changed
    # no replica to await at 0: the await and the digest only it reads are gone, the labels stay
    assert set(off["metadata"]["annotations"]) == {AWAIT_ANNOTATION, METADATA_DIGEST}
    assert on["metadata"]["annotations"] == {} and on["metadata"]["labels"] == off["metadata"]["labels"]
    pod = on["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "amd64-1-idle"
    bk, scaler = pod["containers"]
    assert bk["command"][:2] == ["sh", "-c"] and bk["command"][2].endswith('exec rootlesskit buildkitd "$@"')
    assert bk["args"] == off["spec"]["template"]["spec"]["containers"][0]["args"]
    assert {m["name"] for m in bk["volumeMounts"]} == {"state", "config", "idle"}
    assert scaler["image"] == SPEC.idle_image
    assert {m["name"] for m in scaler["volumeMounts"]} == {"idle", "scaler-token"}
    assert scaler["env"] == [{"name": "BKF_API_SERVER", "value": "https://kubernetes.default.svc"}]
    assert "/apis/apps/v1/namespaces/farm/statefulsets/amd64-1/scale" in scaler["command"][2]
    token = next(v for v in pod["volumes"] if v["name"] == "scaler-token")["projected"]["sources"]
    assert token[0]["serviceAccountToken"]["path"] == "token"


def test_roles_may_only_get_and_patch_the_scale_of_their_statefulsets() -> None:
    sa, role, binding = i.node_rbac_manifests(SPEC, NODE)
    assert sa["automountServiceAccountToken"] is False
    assert role["rules"] == [{"apiGroups": ["apps"], "resources": ["statefulsets/scale"],
                              "resourceNames": ["amd64-1"], "verbs": ["get", "patch"]}]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "amd64-1-idle", "namespace": "farm"}]
    nodes = [NODE, KubernetesNodeSpec(name="arm64-1", platform="linux/arm64")]
    *_, ci_role, _, token = i.ci_wake_manifests(SPEC, nodes)
    assert ci_role["rules"][0]["resourceNames"] == ["amd64-1", "arm64-1"]
    assert ci_role["rules"][0]["verbs"] == ["get", "patch"]
    assert token["type"] == "kubernetes.io/service-account-token"
    assert token["metadata"]["annotations"] == {"kubernetes.io/service-account.name": "bkf-ci-wake"}


def watcher(tmp: Path, history: str, after_s: int = 2) -> subprocess.Popen[str]:
    """The watcher under busybox sh, its stop file in tmp, a fake buildctl and a fake entrypoint
    that waits for the stop file."""
    (tmp / "bin").mkdir()
    (tmp / "history").write_text(history)
    (tmp / "bin" / "buildctl").write_text(f'#!/bin/sh\ncat {tmp}/history\n')
    (tmp / "bin" / "rootlesskit").write_text('#!/bin/sh\necho "entrypoint $*"\nsleep 30\n')
    for f in ("buildctl", "rootlesskit"):
        (tmp / "bin" / f).chmod(0o755)
    script = i.watcher_script(IdleStop(after_s, 1)).replace(i.IDLE_DIR, str(tmp))
    return subprocess.Popen(["busybox", "sh", "-c", script, "bkf-node", "--addr", "x"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={"PATH": f"{tmp}/bin:{os.environ['PATH']}"}, start_new_session=True)


def stop(p: subprocess.Popen[str]) -> tuple[str, str]:
    """The watcher is a background child of the entrypoint's shell: end the whole group."""
    os.killpg(p.pid, signal.SIGKILL)
    return p.communicate(timeout=30)


def wait_for(path: Path, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if path.exists():
            return True
        time.sleep(0.2)
    return False


def test_an_idle_node_asks_to_scale_to_zero(tmp_path: Path) -> None:
    # a last build long ago: the clock starts at the container's start, then runs out
    p = watcher(tmp_path, f"done {int(time.time()) - 3600}\n")
    try:
        assert wait_for(tmp_path / "stop", 60)
    finally:
        out, err = stop(p)
    assert "entrypoint buildkitd --addr x" in out
    assert "no build for" in err and "asking the scaler to scale this node to 0" in err


def test_a_node_with_a_build_in_flight_stays_up(tmp_path: Path) -> None:
    p = watcher(tmp_path, "done 1\nrunning\n", after_s=1)
    try:
        # many times the limit: a running build is never idle
        assert not wait_for(tmp_path / "stop", 6)
    finally:
        stop(p)


WAKE = KubernetesWake("farm", {"amd64-1": "amd64-1", "amd64-2": "amd64-2", "arm64-1": "arm64-1"})


def run_wake(tmp: Path, scales: dict[str, int], *nodes: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`wake NODES` against a fake curl that answers the scale from ``scales`` and logs each call."""
    (tmp / "bin").mkdir(exist_ok=True)
    (tmp / "bin" / "curl").write_text(f"""#!/bin/bash
stdin=$(cat); url=${{!#}}; name=${{url%/scale}}; name=${{name##*/}}
echo "argv: $*" >>{tmp}/calls; echo "stdin: $stdin" >>{tmp}/calls
r=$(cat {tmp}/scale.$name)
case " $* " in *" PATCH "*) echo 1 >{tmp}/scale.$name; r=1;; esac
if [ "$r" = 0 ]; then echo '{{"kind":"Scale","spec":{{}},"status":{{"replicas":0}}}}'
else echo '{{"kind":"Scale","spec":{{"replicas":'$r'}},"status":{{"replicas":'$r'}}}}'; fi
""")
    (tmp / "bin" / "curl").chmod(0o755)
    for n, r in scales.items():
        (tmp / f"scale.{n}").write_text(str(r))
    script = "\n".join(["set -euo pipefail", 'fail() { echo "FAIL $*"; exit 1; }',
                        'check_node() { echo "$1" >>' + str(tmp) + '/checked; }',
                        "declare -A plat ep sn", *render_wake(WAKE), f"wake {' '.join(nodes)}"])
    for n in WAKE.statefulsets:
        script = script.replace("declare -A plat ep sn", f"declare -A plat ep sn; plat[{n}]=p ep[{n}]=e sn[{n}]=s", 1)
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                          env={"PATH": f"{tmp}/bin:/usr/bin:/bin", **env})


API = {"BKF_K8S_API": "https://api:6443/", "BKF_K8S_TOKEN": "s3cret-token", "BKF_K8S_CA": "PEM"}


def test_wake_scales_exactly_the_needed_nodes_at_zero_and_keeps_the_token_off_argv(tmp_path: Path) -> None:
    r = run_wake(tmp_path, {"amd64-1": 0, "amd64-2": 0, "arm64-1": 1}, "amd64-1", "arm64-1", **API)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "wake: scaling node amd64-1 (statefulset amd64-1) to 1" in r.stdout
    assert "wake: node amd64-1 answers mTLS" in r.stdout and "arm64-1) to 1" not in r.stdout
    assert [(tmp_path / f"scale.{n}").read_text().strip() for n in WAKE.statefulsets] == ["1", "0", "1"]
    calls = (tmp_path / "calls").read_text()
    argv = [line for line in calls.splitlines() if line.startswith("argv:")]
    # a GET of each needed node, one PATCH (the node at 0)
    assert len(argv) == 3 and sum("PATCH" in a for a in argv) == 1
    assert "https://api:6443/apis/apps/v1/namespaces/farm/statefulsets/amd64-1/scale" in argv[0]
    assert "--cacert" in argv[0]
    assert "s3cret-token" not in "\n".join(argv)
    assert 'stdin: header = "Authorization: Bearer s3cret-token"' in calls
    assert (tmp_path / "checked").read_text().split() == ["amd64-1"]


@pytest.mark.parametrize("missing", ["BKF_K8S_API", "BKF_K8S_TOKEN"])
def test_without_the_api_or_token_scaled_down_nodes_stay_down(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in API.items() if k != missing}
    r = run_wake(tmp_path, {"amd64-1": 0}, "amd64-1", **env)
    assert r.returncode == 0 and "nodes scaled to 0 stay down" in r.stderr
    assert not (tmp_path / "calls").exists()
