"""A data volume that fills up: with bytes (a 2 GiB loop device as the node's data volume, formatted
by bkf-node.sh) and with inodes (a volume made with few inodes before install). The daemon keeps
serving, the failed build gives a clean error, space comes back and the next build succeeds."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from harness.hosts import run, running_hosts
from tests.reliability import figures
from tests.reliability.farm import Farm

pytestmark = pytest.mark.reliability

BYTES_HOST, INODES_HOST = "h46", "h47"
VOLUME_GB = 2
#: the inode volume: far fewer inodes than its blocks, so a build runs out of inodes with bytes to spare
FEW_INODES = 4096
ENOSPC = "No space left on device"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    d = tmp_path_factory.mktemp("disk-full")
    with running_hosts([BYTES_HOST, INODES_HOST], d / "state", data_gb=VOLUME_GB) as hs:
        f = Farm.make(hs, d, volume_gb=VOLUME_GB)
        run(["mkfs.ext4", "-q", "-F", "-m", "0", "-N", str(FEW_INODES), "-L", "bkf-state",
             f"/run/bkf-testhosts/{INODES_HOST}/data-device"])
        for h in (BYTES_HOST, INODES_HOST):
            assert "buildkitd is up" in f.install(h)
        yield f


def df(farm: Farm, host: str) -> dict[str, int]:
    """Free MiB and free inodes of the node's data volume."""
    out = farm.ssh(host, "df -B1M --output=avail,iavail,itotal /var/lib/buildkit | tail -1").stdout.split()
    return {"free_mib": int(out[0]), "free_inodes": int(out[1]), "inodes": int(out[2])}


def fill_dockerfile(step: str) -> str:
    return f"FROM scratch\nADD rootfs-amd64.tar /\nARG N\nRUN {step}\n"


def test_bkf_node_formats_one_inode_per_block(small: Farm) -> None:
    """The safety measure for inodes: GC counts bytes only, so the volume gets an inode for every
    4 KiB block (mkfs -i 4096): any file with data takes a block, so bytes run out (and GC acts)
    before inodes can; only empty files and short symlinks could still exhaust inodes first."""
    out = small.ssh(BYTES_HOST, "tune2fs -l \"$(findmnt -n -o SOURCE /var/lib/buildkit)\"").stdout
    inodes = int(re.search(r"Inode count:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    blocks = int(re.search(r"Block count:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    block = int(re.search(r"Block size:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    figures.record("data volume: inodes per 4 KiB of blocks", f"{inodes / (blocks * block / 4096):.2f}")
    assert inodes * 4096 >= blocks * block, (inodes, blocks, block)


def wait_free(farm: Farm, host: str, key: str, above: int, attempts: int = 60) -> int:
    """Poll (3 s apart, bounded) until the volume's ``key`` is above ``above``: GC runs at most once a
    minute (buildkitd throttles it), so the space comes back within about a minute; the last value."""
    for _ in range(attempts):
        now = df(farm, host)[key]
        if now > above:
            return now
        time.sleep(3)
    return now


def test_a_full_volume_bytes_or_inodes_daemon_serves_gc_frees_next_build_succeeds(small: Farm) -> None:
    b, i = BYTES_HOST, INODES_HOST
    pids = {h: small.daemon_pid(h) for h in (b, i)}
    layers = small.context("layers", fill_dockerfile("dd if=/dev/zero of=/layer bs=1M count=300 2>/dev/null"))
    free: list[int] = [df(small, b)["free_mib"]]
    small.build(b, layers, build_args={"N": "kept"})  # a cached layer the episode must not lose
    free.append(df(small, b)["free_mib"])
    # bytes: a RUN step writes until the volume is full, then fails
    fill = small.context("fill", fill_dockerfile("dd if=/dev/zero of=/fill bs=1M 2>/dev/null; sync; df -m /; false"))
    r = small.build(b, fill, build_args={"N": "fill"}, check=False)
    at_full = df(small, b)["free_mib"]
    # inodes: a RUN step creates files until none are left
    inodes0 = df(small, i)
    many = small.context("inodes", fill_dockerfile(
        f"mkdir /f && cd /f && i=0 && while [ $i -lt {FEW_INODES + 1000} ]; do : > $i; i=$((i+1)); done"))
    ri = small.build(i, many, build_args={"N": "too-many"}, check=False)
    at_no_inodes = df(small, i)["free_inodes"]
    # while full: both daemons answer
    serving = {h: small.buildctl(h, "debug", "workers", check=False).returncode == 0 and
               small.buildctl(h, "du", check=False).returncode == 0 for h in (b, i)}
    # buildkitd's GC gives the failed steps' snapshots back: they are out of `buildctl du`'s sight and
    # stay on disk until its next run (throttled to once a minute), not at the end of the build
    back_mib = wait_free(small, b, "free_mib", free[-1] - 50)
    back_inodes = wait_free(small, i, "free_inodes", inodes0["free_inodes"] // 2)
    small_ctx = small.context("small", fill_dockerfile("echo $N > /n"))
    nxt = {h: small.build(h, small_ctx, build_args={"N": f"after-{h}"}, check=False) for h in (b, i)}
    kept = small.build(b, layers, build_args={"N": "kept"})
    figures.record("disk full: free MiB start/1 cached layer/full/after GC",
                   f"{free[0]}/{free[-1]}/{at_full}/{back_mib}")
    figures.record("inodes full: free inodes start/full/after GC",
                   f"{inodes0['free_inodes']}/{at_no_inodes}/{back_inodes}")
    for what, h in (("disk full", b), ("inodes full", i)):
        figures.record(f"{what}: daemon served while full, GC freed, next build ok",
                       "yes" if serving[h] and nxt[h].returncode == 0 and small.daemon_pid(h) == pids[h] else "no")
    assert r.returncode != 0 and at_full < 50, (at_full, r.stderr[-1500:])
    assert ri.returncode != 0 and ENOSPC.lower() in ri.stderr.lower() and at_no_inodes < 100, ri.stderr[-1500:]
    assert serving == {b: True, i: True}, serving
    assert {h: small.daemon_pid(h) for h in (b, i)} == pids, "a daemon restarted"
    assert back_mib > free[-1] - 50, f"GC did not give the space back: {back_mib} MiB free, {free}"
    assert back_inodes > inodes0["free_inodes"] // 2, f"the inodes did not come back: {back_inodes}"
    assert all(x.returncode == 0 for x in nxt.values()), {h: x.stderr[-1500:] for h, x in nxt.items()}
    assert re.search(r"RUN dd if=/dev/zero of=/layer[^\n]*\n#\d+ CACHED", kept.stderr), kept.stderr[-1500:]


def test_inodes_held_by_cached_layers_need_a_prune(small: Farm) -> None:
    """What GC cannot do (it counts bytes): a cached layer of many empty files holds the inodes and
    the next file-heavy build fails until the cache is pruned. Shown, not fixed: with bkf-node.sh's
    inode-per-block format only empty files and short symlinks can do this."""
    host = INODES_HOST
    hold = small.context("inodes-hold", fill_dockerfile(
        f"mkdir /f && cd /f && i=0 && while [ $i -lt {FEW_INODES * 3 // 4} ]; do : > $i; i=$((i+1)); done"))
    small.build(host, hold, build_args={"N": "hold"})
    held = df(small, host)
    more = small.context("inodes-more", fill_dockerfile(
        f"mkdir /g && cd /g && i=0 && while [ $i -lt {FEW_INODES // 2} ]; do : > $i; i=$((i+1)); done"))
    stuck = small.build(host, more, build_args={"N": "more"}, check=False)
    small.buildctl(host, "prune", "--all")
    ok = small.build(host, more, build_args={"N": "more"}, check=False)
    figures.record("inodes held by a cached layer: next build before/after prune",
                   f"{'failed' if stuck.returncode else 'ok'}/{'failed' if ok.returncode else 'ok'}"
                   f" ({held['free_inodes']} inodes and {held['free_mib']} MiB free)")
    assert stuck.returncode != 0 and ENOSPC.lower() in stuck.stderr.lower(), stuck.stderr[-1500:]
    assert ok.returncode == 0, ok.stderr[-1500:]
