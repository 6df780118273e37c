"""lib/gobuild.sh's cached_build when a step asks for one more binary under the same stamp (a
command added to a step, as kube-proxy was to the kubernetes one): only the new binary is built,
the others are carried over byte for byte; a changed stamp still rebuilds everything. Runs the
real library with a stand-in `go` (only `go env GOVERSION` is asked) and a recipe that skips what
$OUT already holds, the way build_kubernetes does."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

DRIVER = """\
set -euo pipefail
source "$REPO/toolchain/lib/common.sh"
source "$REPO/toolchain/lib/gobuild.sh"
GO=$T/go CACHE_ROOT=$T/cache LOG_DIR=$T/logs SCRIPT_PATH=$T/driver.sh
trap cleanup EXIT
recipe() {
  local c
  for c in $CMDS; do
    if [[ -x "$OUT/$c" ]]; then echo "kept $c"; continue; fi
    printf '#!/bin/sh\\necho %s %s\\n' "$c" "$(date +%s%N)" >"$OUT/$c"
    chmod +x "$OUT/$c"
    echo "built $c"
  done
}
build_reentry "$@"
# shellcheck disable=SC2086
cached_build demo v1 "demo@$MODV" recipe $CMDS
echo "result: $STEP_RESULT"
"""


def cached_build(t: Path, cmds: str, modv: str = "v1") -> tuple[str, str]:
    """One cached_build of `cmds`; (its result line, the recipe's log)."""
    r = subprocess.run(["bash", str(t / "driver.sh")], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "REPO": str(ROOT), "T": str(t), "CMDS": cmds, "MODV": modv})
    assert r.returncode == 0, r.stdout + r.stderr
    log = t / "logs" / "demo-v1.log"
    return r.stdout, log.read_text() if log.exists() else ""


def contents(t: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((t / "cache" / "demo-v1").iterdir())}


def test_one_more_binary_under_the_same_stamp_is_built_alone(tmp_path: Path) -> None:
    (tmp_path / "driver.sh").write_text(DRIVER)
    (tmp_path / "go").write_text("#!/bin/sh\necho go1.0.0\n")
    (tmp_path / "go").chmod(0o755)
    _, log = cached_build(tmp_path, "a b")
    assert re.findall(r"^(built|kept) (\w)$", log, re.M) == [("built", "a"), ("built", "b")]
    first = contents(tmp_path)
    assert first[".stamp"] == "demo@v1 go1.0.0 recipe=4\n"
    # the same: nothing built
    assert cached_build(tmp_path, "a b")[0].strip() == "result: cached"
    assert contents(tmp_path) == first
    # one more command under the same stamp: the two carried over unchanged, only c built
    _, log = cached_build(tmp_path, "a b c")
    assert re.findall(r"^(built|kept) (\w)$", log, re.M) == [("kept", "a"), ("kept", "b"), ("built", "c")]
    now = contents(tmp_path)
    assert {k: now[k] for k in first} == first and set(now) == {".stamp", "a", "b", "c"}
    # another module version (a new stamp): everything is built again
    _, log = cached_build(tmp_path, "a b c", modv="v2")
    assert re.findall(r"^(built|kept) (\w)$", log, re.M) == [("built", "a"), ("built", "b"), ("built", "c")]
    assert contents(tmp_path)["a"] != first["a"]


def test_the_kubernetes_step_builds_kube_proxy_and_the_cluster_runs_it() -> None:
    cluster = (ROOT / "toolchain/steps/cluster.sh").read_text()
    cmds = re.search(r"^KUBERNETES_CMDS=\(([^)]*)\)$", cluster, re.M)
    assert cmds and cmds[1].split() == ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
                                        "kubectl", "kube-proxy"]
    # the wrapper module pins what every command imports (toolchain/lock.sh go kubernetes)
    tools = (ROOT / "toolchain/modules/kubernetes/tools.go").read_text()
    assert re.findall(r'_ "k8s.io/kubernetes/cmd/([\w-]+)"', tools) == cmds[1].split()
    assert "sigs.k8s.io/knftables" in (ROOT / "toolchain/modules/kubernetes/go.mod").read_text()
    # the recipe skips what cached_build carried over
    assert 'if [[ -x "$OUT/$c" ]]; then echo "kept $c"; continue; fi' in cluster
    need = re.search(r"need_cluster_bins\(\) \{\n(.*)\n", (ROOT / "local/k8s.sh").read_text())
    assert need and "kube-proxy" in need[1]
