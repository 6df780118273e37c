"""Teardown never half-fails, and no private key leaks: `pulumi up` / `pulumi destroy` cycles of a
two-node farm through the real program (file backend, as tests/e2e), every test host with its own
/etc/fstab. The first cycle also looks for the farm's private keys wherever they could leak."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.farm import Farm, running_farm
from harness.hosts import need, running_hosts
from tests.reliability import figures

pytestmark = pytest.mark.reliability

STACK = "rel"
HOSTS = {"h46": "amd64-1", "h47": "amd64-2"}
BUILDER = "bkf-rel"
#: where a node keeps files (its private paths on a test host)
NODE_DIRS = "/etc/buildkit /etc/buildkit-farm /opt/buildkit-farm /run/buildkit /var/log/buildkit-farm"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    need("pulumi", "pulumi-language-python", "buildkitd", "buildctl", "docker-buildx", "ssh")
    d = tmp_path_factory.mktemp("updown")
    with running_hosts(list(HOSTS), d / "state") as hs, running_farm(hs, STACK, d, HOSTS, BUILDER, up=False) as f:
        yield f


def private_keys(s: Farm) -> list[str]:
    """The farm's private keys (every tls PrivateKey in the state) as the PEM line that carries the
    secret: an EC key's first body line holds its private scalar (the rest is mostly the public
    point, which is public and turns up legitimately)."""
    state = json.loads(s.pulumi("stack", "export", "--show-secrets").stdout)
    pems = [r["outputs"]["privateKeyPem"] for r in state["deployment"]["resources"]
            if r["type"] == "tls:index/privateKey:PrivateKey"]
    # a secret in an export with --show-secrets: {"<secret sig>": ..., "plaintext": "<JSON of the value>"}
    pems = [json.loads(p["plaintext"]) if isinstance(p, dict) else p for p in pems]
    return [next(line for line in pem.splitlines() if line and not line.startswith("-----")) for pem in pems]


def leaks(text: str, keys: list[str]) -> int:
    return sum(line in text for line in keys)


def leaked_at(text: str, keys: list[str]) -> list[str]:
    """The lines around each leaked key line (for the failure message)."""
    out = []
    for line in keys:
        i = text.find(line)
        if i >= 0:
            out.append(f"{line} in: {text[max(0, i - 200):i + 100]!r}")
    return out


class CmdlineWatch:
    """Every distinct /proc/*/cmdline on this machine while it runs (the test hosts share its PID
    namespace: the client, pulumi and its plugins, ssh, and the nodes' processes)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for p in Path("/proc").iterdir():
                if p.name.isdigit():
                    try:
                        self.seen.add((p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
                    except OSError:
                        continue
            self._stop.wait(0.1)

    def __enter__(self) -> CmdlineWatch:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def fstabs(s: Farm) -> dict[str, str]:
    """This machine's /etc/fstab and each test host's own (local/testhosts.sh), by digest."""
    out = {"machine": hashlib.sha256(Path("/etc/fstab").read_bytes()).hexdigest()}
    for h in s.hosts.hosts:
        text = s.hosts.ssh(h, "cat /etc/fstab").stdout
        assert f"of test host {h.name} " in text, f"{h.name} sees another /etc/fstab than its own:\n{text}"
        out[h.name] = hashlib.sha256(text.encode()).hexdigest()
    return out


def leftovers(s: Farm) -> list[str]:
    left = []
    for h in s.hosts.hosts:
        procs = [p for p in s.hosts.processes(h) if not p.startswith(("/usr/sbin/sshd", "sshd"))]
        mounts = [m for m in s.hosts.ssh(h, "cat /proc/mounts").stdout.splitlines()
                  if m.split()[1].startswith("/var/lib/buildkit")]
        left += [f"{h.name} process: {p}" for p in procs] + [f"{h.name} mount: {m}" for m in mounts]
    return left


def test_private_keys_do_not_leak(stack: Farm) -> None:
    preview = stack.pulumi("preview")
    with CmdlineWatch() as watch:
        up = stack.pulumi("up", "--yes", "--skip-preview")
    keys = private_keys(stack)
    # the CA, the client and one server key per node
    assert len(keys) == 2 + len(HOSTS) and all(len(k) == 64 for k in keys), "the state's keys were not found"
    export = stack.pulumi("stack", "export").stdout
    preview2 = stack.pulumi("preview", "--diff").stdout
    outputs = preview.stdout + preview.stderr + up.stdout + up.stderr + preview2
    found = {
        "stack export": leaks(export, keys),
        "up/preview output": leaks(outputs, keys),
        "process arguments": sum(leaks(c, keys) for c in watch.seen),
    }
    detail = leaked_at(export, keys) + leaked_at(outputs, keys) + [c[:400] for c in watch.seen if leaks(c, keys)]
    logs = wide = 0
    files_checked = 0
    for h in stack.hosts.hosts:
        logs += leaks(stack.hosts.ssh(h, "cat /var/log/buildkit-farm/*.log 2>/dev/null || true").stdout, keys)
        # every file of the node that holds key material, with its mode
        # (the key lines travel on stdin into a 0600 temp file: never on a command line)
        listing = stack.hosts.ssh(h, f"k=$(mktemp); cat > $k; find {NODE_DIRS} -type f -exec grep -lF -f $k {{}} + "
                                     "2>/dev/null | xargs -r stat -c '%a %n'; rm -f $k", stdin="\n".join(keys) + "\n",
                                  check=False).stdout.split("\n")
        for line in filter(None, listing):
            files_checked += 1
            if int(line.split()[0], 8) & 0o077:
                wide += 1
                detail.append(f"{h.name}: {line}")
    # the client side: the stack's dir with the builder's BUILDX_CONFIG (not the encrypted backend, nor
    # the test hosts' state: their 20 GiB sparse data images would take minutes to read)
    client_files = [p for p in stack.dir.rglob("*") if p.is_file() and not p.is_symlink()
                    and not {"backend", "hosts"} & set(p.parts) and p.stat().st_size < 1 << 20
                    and any(k.encode() in p.read_bytes() for k in keys)]
    files_checked += len(client_files)
    for p in client_files:
        if p.stat().st_mode & 0o077:
            wide += 1
            detail.append(f"client: {oct(p.stat().st_mode)} {p}")
    found["node logs"] = logs
    found[f"key files wider than 0600 ({files_checked} key files)"] = wide
    for where, n in found.items():
        figures.record(f"private key in plaintext: {where}", str(n))
    figures.record("process command lines watched during up", str(len(watch.seen)))
    # each node's key.pem and the builder's (under BUILDX_CONFIG) at least: else the check saw nothing
    assert files_checked >= len(HOSTS) + 1, "expected the nodes' and the builder's key files"
    assert all(n == 0 for n in found.values()), (found, detail)
    stack.pulumi("destroy", "--yes", "--skip-preview")


def test_up_down_cycles_are_clean(stack: Farm) -> None:
    before = fstabs(stack)
    clean = 0
    problems: list[str] = []
    for i in range(figures.CYCLES):
        up = stack.pulumi("up", "--yes", "--skip-preview", check=False)
        down = stack.pulumi("destroy", "--yes", "--skip-preview", check=False)
        left = leftovers(stack)
        state = json.loads(stack.pulumi("stack", "export").stdout)["deployment"].get("resources") or []
        ok = up.returncode == 0 and down.returncode == 0 and not left and not state and fstabs(stack) == before
        clean += ok
        if not ok:
            problems.append(f"cycle {i}: up {up.returncode} down {down.returncode} left {left} "
                            f"resources {len(state)} fstab {fstabs(stack) != before}\n"
                            f"{up.stderr[-800:]}\n{down.stdout[-1500:]}{down.stderr[-800:]}")
            if state:  # a half-destroyed stack: finish it so the next cycle starts clean
                stack.pulumi("destroy", "--yes", "--skip-preview", check=False)
    figures.record("pulumi up/destroy cycles clean (2 nodes)", figures.ratio(clean, figures.CYCLES))
    assert not problems, "\n".join(problems)
    assert re.fullmatch(r"[0-9a-f]{64}", before["machine"])
