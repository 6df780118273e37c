"""`make bench`: what the farm is for, measured (issue 11). Over 300 lines on purpose: the runner
is one sequence of scenarios sharing one farm, one registry and one work dir; split, each part
would need the whole set-up handed to it.

  python -m bench.farm_bench [--runs 3] [--ratio-runs 9] [--smoke] [--out bench/out] [--readme] [--no-arm64]

Stands up its own two-node farm (bench/farm.py: h41 amd64, h42 arm64 under QEMU), a throwaway
buildkitd per "ephemeral CI runner" build (bench/ephemeral.py), builds the workload
(bench/workload.py: distribution's registry; --smoke: a one-file program, one run) and prints
min/median/max per scenario and the ratios beside the issue's targets (bench/report.py). Writes
bench/out/bench.json (raw figures), bench/out/bench.png (chart) and bench/out/README-table.md;
--readme also copies the chart to docs/bench/ and rewrites the bench block of the benchmarks page,
docs/bench/index.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from bench import breakdown, report, workload
from bench.ephemeral import ephemeral_buildkitd
from bench.farm import BUILDER, REGISTRY, bench_farm, daemon_pid, kill9, reinstall, restart
from bench.floor import Floor
from harness.dockerd import running_dockerd
from harness.farm import Farm
from harness.hosts import ROOT
from harness.stack import file_backend

AMD, ARM = "amd64-1", "arm64-1"
PREVIEW_SUBNET = "10.77.0."  # preview nodes get .100 up: addresses no test host uses (h90+)
# seconds between two kill -9 of scenario 8: the supervisor counts whole seconds (bash SECONDS), so
# 11 s after the answer the daemon has run >= 10 s and its next death is not taken for a crash loop
KILL9_SETTLE_S = 11
FILES = (10, 1000, 10000)  # the no-change floor's context sizes; --smoke: the first two (--files)


def cached(build_log: str) -> int:
    """Steps buildx reports as CACHED in a --progress plain log."""
    return len(re.findall(r"^#\d+ CACHED$", build_log, re.M))


def log(msg: str) -> None:
    print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {msg}", flush=True)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.scn: dict[str, dict[str, Any]] = {}
        self.notes: list[str] = []
        self.env = {**os.environ, "BUILDX_CONFIG": str(workdir / "buildx")}
        self.w = workload.prepare(smoke=args.smoke)
        self.ctx = workload.make_context(self.w, workdir / "ctx")
        self.ctx_nomounts = workload.make_context(self.w, workdir / "ctx-nomounts", cache_mounts=False)
        self.ctx_bind = workload.make_context(self.w, workdir / "ctx-bind", source="bind")
        self.edits = 0
        self.logs = args.out / "logs"  # every build's --progress plain log, to explain an outlier
        shutil.rmtree(self.logs, ignore_errors=True)
        self.logs.mkdir(parents=True)
        self.last_log = ""
        self.s3_parts: list[dict[str, float]] = []  # BuildKit's per-step times of each scenario 3 build
        self.s3b_parts: list[dict[str, float]] = []  # and of each scenario 3b build
        self.rootfs = workload.rootfs(workdir / "rootfs")  # busybox: the base of the small contexts

    def record(self, key: str, seconds: float, detail: str = "") -> None:
        self.scn.setdefault(key, {"title": report.TITLES[key], "unit": "s", "samples": []})["samples"].append(
            round(seconds, 4))
        detail = "; ".join(d for d in (detail, self.last_log) if d)
        self.last_log = ""
        log(f"{report.TITLES[key]}: {seconds:.3f} s{' (' + detail + ')' if detail else ''}")

    def missing(self, key: str, why: str) -> None:
        self.scn[key] = {"title": report.TITLES[key], "unit": "s", "samples": [], "missing": why}
        log(f"{report.TITLES[key]}: not measured: {why}")

    def edit(self) -> str:
        """A value no earlier one-line change used (this run's, or an earlier run's)."""
        self.edits += 1
        return f"{os.getpid()}-{self.edits}-{time.time_ns()}"

    def change(self, ctx: Path) -> None:
        workload.one_line_change(self.w, ctx, self.edit())

    def build(self, builder: str, ctx: Path, platform: str = "linux/amd64", *extra: str,
              cache_only: bool = False) -> tuple[float, str]:
        """One `docker-buildx build` (output: the binary, to a local dir); seconds and the log.
        The binary must come out, so a build that silently did nothing cannot pass for fast."""
        out = self.workdir / "out"
        shutil.rmtree(out, ignore_errors=True)
        seconds, log_text = self.buildx(builder, ctx, "--platform", platform, *extra, "--output",
                                        "type=cacheonly" if cache_only else f"type=local,dest={out}")
        if not cache_only and not ((out / "app").is_file() and (out / "app").stat().st_size > 0):
            raise RuntimeError(f"build on {builder} made no app:\n{log_text[-4000:]}")
        return seconds, log_text

    def buildx(self, builder: str, ctx: Path, *args: str, env: dict[str, str] | None = None) -> tuple[float, str]:
        """One `docker-buildx build` with args; seconds and its --progress plain log (kept in logs/)."""
        t0 = time.monotonic()
        r = subprocess.run(["docker-buildx", "build", "--builder", builder, "--progress", "plain", *args, str(ctx)],
                           env=env or self.env, capture_output=True, text=True, timeout=3600)
        seconds = time.monotonic() - t0
        n = len(list(self.logs.iterdir())) + 1
        platform = args[args.index("--platform") + 1] if "--platform" in args else "default"
        path = self.logs / f"{n:02d}-{builder}-{platform.replace('/', '-')}.log"
        path.write_text(r.stderr)
        self.last_log = f"log {path.relative_to(self.args.out)}"
        if r.returncode != 0:
            raise RuntimeError(f"build on {builder} failed ({r.returncode}):\n{r.stderr[-4000:]}")
        return seconds, r.stderr

    # --- scenarios -------------------------------------------------------------------------
    def ephemeral_full(self) -> None:
        for _ in range(self.args.runs):
            self.change(self.ctx)
            with ephemeral_buildkitd(self.workdir, self.env) as b:
                s, _ = self.build(b, self.ctx)
            self.record("s1_ephemeral_full", s)

    def warm_farm(self, farm: Farm) -> None:
        """The farm's first build (untimed): warms the node, and exports the registry cache that
        scenario 2 imports (mode=max, as a CI pipeline with a registry cache does)."""
        self.change(self.ctx)
        s, _ = self.build(BUILDER, self.ctx, "linux/amd64", "--cache-to",
                          f"type=registry,ref={REGISTRY}/bench/cache:amd64,mode=max")
        log(f"farm warm-up build with --cache-to the registry (untimed): {s:.1f} s")
        s, _ = self.build(BUILDER, self.ctx_nomounts, "linux/amd64", "--target", "deps", cache_only=True)
        log(f"farm warm-up of the no-cache-mount Dockerfile's dependency stage (untimed): {s:.1f} s")
        self.change(self.ctx_bind)
        s, _ = self.build(BUILDER, self.ctx_bind)
        log(f"farm warm-up of the bind-mount Dockerfile (untimed): {s:.1f} s")

    def farm_builds(self, farm: Farm) -> None:
        # 3, 3b and the floor 3f alternate (two farm builds, then the same kind of change built locally),
        # so that all see the machine in the same state: a ratio of two phases minutes apart also
        # measured how the machine drifted in between
        floor = Floor(self.w, self.ctx, self.workdir / "floor")
        try:
            floor.change("warm")
            log(f"floor warm-up: local go build with empty caches (untimed): {floor.build():.1f} s")
            for _ in range(self.args.ratio_runs):
                for key, ctx, parts in (("s3_farm_change", self.ctx, self.s3_parts),
                                        ("s3b_farm_change_bind_source", self.ctx_bind, self.s3b_parts)):
                    self.change(ctx)
                    meta = self.workdir / "build-metadata.json"
                    s, _ = self.build(BUILDER, ctx, "linux/amd64", "--metadata-file", str(meta))
                    parts.append(breakdown.parts(s, breakdown.spans(self.trace(meta))))
                    self.record(key, s)
                floor.change(self.edit())
                self.record("s3_floor_local_go", floor.build())
        finally:
            floor.clean()
        for _ in range(self.args.runs):
            s, out = self.build(BUILDER, self.ctx)
            self.record("s4_farm_noop", s, f"{cached(out)} steps CACHED")
        for _ in range(self.args.ratio_runs):
            self.record("s8_ready_restart", restart(farm, AMD))
            self.change(self.ctx)
            s, _ = self.build(BUILDER, self.ctx)
            self.record("s5_farm_restart_change", s)
        for _ in range(self.args.runs):
            self.change(self.ctx_nomounts)
            s, _ = self.build(BUILDER, self.ctx_nomounts)
            self.record("s6_farm_change_no_cache_mounts", s)

    def trace(self, metadata_file: Path) -> str:
        """BuildKit's own trace of the build whose `--metadata-file` this is: its build record,
        exported from the node's history (`docker-buildx history export`, untimed)."""
        ref = json.loads(metadata_file.read_text())["buildx.build.ref"]  # builder/node/ref
        bundle = self.workdir / "record.dockerbuild"
        subprocess.run(["docker-buildx", "history", "export", "--builder", BUILDER, "--finalize",
                        ref.rsplit("/", 1)[-1], "-o", str(bundle)], env=self.env, check=True, capture_output=True)
        return breakdown.bundle_trace(bundle.read_bytes())

    def noop_by_context_size(self) -> None:
        """The no-change floor by context size: N small files, COPY . and one trivial step; one
        untimed build (the whole context goes up), then no change at all."""
        for n in FILES:
            if n not in self.args.files:
                self.missing(f"s4_noop_files_{n}", f"--files {','.join(map(str, self.args.files))}")
                continue
            ctx = workload.files_context(self.workdir / f"ctx-files-{n}", n, self.rootfs)
            s, _ = self.build(BUILDER, ctx)
            got = (self.workdir / "out" / "app").read_text().strip()
            if got != str(n):
                raise RuntimeError(f"the {n}-file build counted {got!r} files")
            log(f"{n}-file context, first build (untimed, the whole context sent): {s:.2f} s")
            for _ in range(self.args.runs):
                s, out = self.build(BUILDER, ctx)
                self.record(f"s4_noop_files_{n}", s, f"{cached(out)} steps CACHED")
            shutil.rmtree(ctx)

    def load_vs_registry(self) -> None:
        """A ~100 MB image into a local Docker engine: `--load` against a push to the registry beside
        the farm and a `docker pull` (which fetches only the layers the engine lacks). First each
        path carries a 100 MB layer new to the node's exports, the registry and the engine (one
        of its own per path: an export compresses a layer once and reuses it, so a shared one
        would favour whichever path came second); then only the small layer on top changes."""
        ctx = workload.load_context(self.workdir / "ctx-load", self.rootfs)
        with running_dockerd(self.workdir / "dockerd", namespace="bkf-bench", insecure_registry=REGISTRY) as engine:
            env = {**self.env, "DOCKER_HOST": engine.host}

            def dk(*args: str) -> str:
                r = subprocess.run([engine.docker, "--host", engine.host, *args],
                                   capture_output=True, text=True, timeout=900)
                if r.returncode != 0:
                    raise RuntimeError(f"docker {' '.join(args)} failed:\n{r.stderr[-3000:]}")
                return r.stdout

            def args(blob: str, seed: str) -> list[str]:
                a = ["--platform", "linux/amd64", "--build-arg", f"BLOB={blob}", "--build-arg", f"SEED={seed}"]
                self.buildx(BUILDER, ctx, *a, "--output", "type=cacheonly")  # the build itself, untimed
                return a

            def load(blob: str, seed: str, key: str) -> str:
                a = args(blob, seed)
                s, _ = self.buildx(BUILDER, ctx, *a, "--load", "-t", f"bench/load:{seed}", env=env)
                self.record(key, s)
                return f"bench/load:{seed}"

            def registry(blob: str, seed: str, key: str) -> str:
                a, ref = args(blob, seed), f"{REGISTRY}/bench/load:{seed}"
                t0 = time.monotonic()
                self.buildx(BUILDER, ctx, *a, "--output", f"type=registry,name={ref}")
                dk("pull", "-q", ref)
                self.record(key, time.monotonic() - t0)
                return ref

            images = []
            for i in range(self.args.runs):
                blob = f"{os.getpid()}-{i}-{time.time_ns()}"
                images += [(load(f"{blob}-l", f"first-{i}-l", "s10_load"), f"first-{i}-l"),
                           (registry(f"{blob}-r", f"first-{i}-r", "s10_registry_pull"), f"first-{i}-r"),
                           (load(f"{blob}-r", f"change-{i}-l", "s10_load_change"), f"change-{i}-l"),
                           (registry(f"{blob}-r", f"change-{i}-r", "s10_registry_pull_change"), f"change-{i}-r")]
            for image, seed in images:  # what came in is the image built: its seed and its 100 MB layer
                got = dk("run", "--rm", "--network", "none", image).strip()
                if got != f"{seed} 100000000":
                    raise RuntimeError(f"{image} says {got!r}, not {seed!r} and a 100 MB layer")
            size = int(dk("image", "inspect", "-f", "{{.Size}}", images[-1][0]))
            self.notes.append(f"load vs registry: an image of {size / 1e6:.0f} MB (busybox + one 100 MB random "
                              "layer + a small one), into a Docker engine of the bench's own on this machine")

    def ephemeral_registry_cache(self) -> None:
        ca = self.workdir / "registry" / "ca.pem"
        for _ in range(self.args.runs):
            self.change(self.ctx)
            with ephemeral_buildkitd(self.workdir, self.env, REGISTRY, ca) as b:
                s, out = self.build(b, self.ctx, "linux/amd64", "--cache-from",
                                    f"type=registry,ref={REGISTRY}/bench/cache:amd64")
            n = cached(out)
            if not n:
                raise RuntimeError(f"scenario 2: nothing came from the registry cache:\n{out[-3000:]}")
            self.record("s2_ephemeral_registry_cache_change", s, f"{n} steps CACHED from the registry")

    def noop_round_trip(self, farm: Farm) -> None:
        """A no-op build through buildctl: mTLS over TCP from this machine vs the node's unix socket
        from inside the host (nsenter into buildkitd's mount and network namespaces)."""
        build = ["build", "--frontend", "dockerfile.v0", "--local", f"context={self.ctx}", "--local",
                 f"dockerfile={self.ctx}", "--opt", "platform=linux/amd64"]
        pid = daemon_pid(farm, AMD)
        paths = {"s7_noop_mtls_tcp": [*farm.buildctl_argv(AMD), *build],
                 "s7_noop_unix": ["nsenter", "-t", str(pid), "-m", "-n", "buildctl", "--addr",
                                  "unix:///run/buildkit/buildkitd.sock", *build]}
        for argv in paths.values():  # untimed: each client's first session uploads the whole context
            subprocess.run(argv, check=True, capture_output=True, timeout=600)
        for _ in range(self.args.runs):
            for key, argv in paths.items():
                t0 = time.monotonic()
                subprocess.run(argv, check=True, capture_output=True, timeout=600)
                self.record(key, time.monotonic() - t0)

    def ready_times(self, farm: Farm) -> None:
        for i in range(self.args.runs):
            if i:
                # one kill at a time: the node's supervisor restarts a daemon that ran >= 10 s after
                # 0.5 s but backs off (3 s) from one that died sooner, as in a crash loop; kills back
                # to back would time that back-off (the 2026-12-04 run did: 1.9 s, then 3.2 s twice)
                time.sleep(KILL9_SETTLE_S)
            self.record("s8_ready_kill9", kill9(farm, AMD))
        for _ in range(self.args.runs):
            self.record("s8_ready_fresh_install", reinstall(farm, AMD))

    def arm64(self, farm: Farm) -> None:
        """Emulated here (QEMU user mode): a full Go build takes many times longer, so the arm64
        node builds the smoke workload, once, after an untimed warm-up."""
        small = workload.prepare(smoke=True)
        ctx = workload.make_context(small, self.workdir / "ctx-arm64")
        workload.one_line_change(small, ctx, "warm")
        s, _ = self.build(BUILDER, ctx, "linux/arm64")
        log(f"arm64 warm-up build of {small.module} (untimed, emulated): {s:.1f} s")
        self.notes.append(f"arm64 node: emulated (QEMU user mode on this x86 machine), workload {small.module}, "
                          f"one run; its untimed warm-up (empty cache) took {s:.1f} s")
        workload.one_line_change(small, ctx, "change")
        s, _ = self.build(BUILDER, ctx, "linux/arm64")
        self.record("arm64_s3_farm_change", s)
        s, _ = self.build(BUILDER, ctx, "linux/arm64")
        self.record("arm64_s4_farm_noop", s)

    def previews(self, farm: Farm) -> None:
        """`pulumi preview` of a stack that was never created, with 2, 8, 32 ssh nodes at addresses
        nobody uses; each count in its own stack of a separate file backend."""
        d = self.workdir / "previews"
        d.mkdir(exist_ok=True)
        env = file_backend(d)
        base = (ROOT / "Pulumi.bench.yaml").read_text()
        for n in report.PREVIEW_NODES:
            stack = f"bench-preview-{n}"
            cfg = yaml.safe_load(base)
            cfg.pop("encryptionsalt", None)  # the farm stack's: each preview stack gets its own
            tmpl = cfg["config"]["buildkit-farm:nodes"]
            nodes = []
            for i in range(n):
                node = dict(tmpl[i % 2])
                node["name"] = f"{node['name'].split('-')[0]}-p{i}"
                node["host"] = f"{PREVIEW_SUBNET}{100 + i}"
                node["dataDevice"] = "/dev/disk/by-id/bench-preview"
                node.pop("sshHostKey", None)
                nodes.append(node)
            cfg["config"]["buildkit-farm:nodes"] = nodes
            cfg["config"]["buildkit-farm:builder"]["name"] = stack
            path = ROOT / f"Pulumi.{stack}.yaml"
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            try:
                subprocess.run(["pulumi", "stack", "init", stack, "--non-interactive"], cwd=ROOT, env=env,
                               check=True, capture_output=True)
                for _ in range(self.args.runs):
                    t0 = time.monotonic()
                    r = subprocess.run(["pulumi", "preview", "--stack", stack, "--non-interactive"], cwd=ROOT,
                                       env=env, capture_output=True, text=True, timeout=900)
                    s = time.monotonic() - t0
                    if r.returncode != 0:
                        raise RuntimeError(f"preview of {n} nodes failed:\n{r.stdout[-3000:]}{r.stderr[-2000:]}")
                    self.record(f"s9_preview_{n}", s, f"{s / n:.3f} s per node")
                subprocess.run(["pulumi", "stack", "rm", stack, "--yes", "--force", "--non-interactive"],
                               cwd=ROOT, env=env, capture_output=True)
            finally:
                path.unlink(missing_ok=True)

    def run_all(self) -> None:
        steps: list[tuple[str, Callable[[], None]]] = [("1: ephemeral builder, full build", self.ephemeral_full)]
        with bench_farm(self.workdir, log) as farm:
            log(f"farm up in {farm.up_seconds:.1f} s (pulumi up, both nodes)")
            self.env["BUILDX_CONFIG"] = farm.env["BUILDX_CONFIG"]  # where the program created the builder
            self.notes.append(f"farm stand-up (pulumi up of 2 nodes on fresh test hosts): "
                              f"{farm.up_seconds:.1f} s")
            steps += [
                ("farm warm-up", lambda: self.warm_farm(farm)),
                ("3 and 3f (alternating), 4, 5, 6: the farm's builds", lambda: self.farm_builds(farm)),
                ("4: the no-change floor by context size", self.noop_by_context_size),
                ("10: --load vs the registry", self.load_vs_registry),
                ("2: ephemeral builder with the registry cache", self.ephemeral_registry_cache),
                ("7: no-op round trips", lambda: self.noop_round_trip(farm)),
                ("8: ready times", lambda: self.ready_times(farm)),
                ("9: previews", lambda: self.previews(farm)),
            ]
            if self.args.arm64:
                steps.append(("arm64 (emulated)", lambda: self.arm64(farm)))
            else:
                for k in ("arm64_s3_farm_change", "arm64_s4_farm_noop"):
                    self.missing(k, "--no-arm64")
            for title, step in steps:
                log(f"== {title}")
                step()


def machine() -> str:
    mem = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
               if ln.startswith("MemTotal"))
    return f"{os.cpu_count()} cores, {mem / 2**20:.0f} GiB"


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def publish(data: dict[str, Any], out: Path, readme: bool) -> None:
    """Table on stdout; bench.json, bench.png, README-table.md in out; with readme, the block of the
    benchmarks page (docs/bench/index.md) and docs/bench/bench.png too."""
    meta = data["meta"]
    (out / "bench.json").write_text(json.dumps(data, indent=2) + "\n")
    block = report.readme_block(data, "bench.png")  # beside the page, and beside README-table.md in out
    (out / "README-table.md").write_text(block + "\n")
    report.chart(data["scenarios"], out / "bench.png", f"{meta['workload']}, {meta['machine']}, {meta['date']}")
    print("\n" + report.table(data["scenarios"]))
    if bd := report.breakdown_table(data):
        print(f"{breakdown.TITLE}:\n\n{bd}")
    for n in meta["notes"]:
        print(f"note: {n}")
    print(report.headline(data["scenarios"]))
    print(f"total {meta['seconds_total']} s; figures in {out}/bench.json, chart {out}/bench.png")
    if readme:
        (ROOT / "docs" / "bench").mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "bench.png", ROOT / "docs" / "bench" / "bench.png")
        path = ROOT / "docs" / "bench" / "index.md"
        path.write_text(report.replace_block(path.read_text(), block))
        print("docs/bench/index.md and docs/bench/bench.png updated")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--runs", type=int, default=None, help="runs per scenario (default 3; --smoke: 1)")
    # 3, 3b, 3f and 5 last 2-3 s each and carry the targeted ratios 3 and 3b / floor and 5 / 3: with 3 runs a
    # verdict flipped from run to run (2026-12-05: 3 / floor 1.57x, 1.69x, 1.43x), so they run more
    p.add_argument("--ratio-runs", type=int, default=None,
                   help="runs of scenarios 3, 3b, 3f and 5, the targeted ratios' (default 3 x --runs; --smoke: 1)")
    p.add_argument("--smoke", action="store_true", help="one run, the one-file workload (make test)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    p.add_argument("--readme", action="store_true", help="also rewrite docs/bench/ (index.md, bench.png)")
    p.add_argument("--from-json", type=Path, help="run nothing: publish the figures of an earlier run's bench.json")
    p.add_argument("--arm64", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--files", type=lambda v: tuple(int(n) for n in v.split(",")), default=None,
                   help=f"the no-change floor's context sizes, of {','.join(map(str, FILES))} "
                        f"(default all; --smoke: {FILES[0]},{FILES[1]})")
    args = p.parse_args(argv)
    args.files = args.files or (FILES[:2] if args.smoke else FILES)
    args.runs = args.runs or (1 if args.smoke else 3)
    args.ratio_runs = args.ratio_runs or (1 if args.smoke else 3 * args.runs)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        earlier: dict[str, Any] = json.loads(args.from_json.read_text())
        earlier["ratios"] = [r.__dict__ for r in report.ratios(earlier["scenarios"])]
        publish(earlier, args.out, args.readme)
        return 0
    workdir = ROOT / ".state" / ("bench-smoke" if args.smoke else "bench")
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    started, load0 = time.monotonic(), loadavg()
    date = f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    log(f"bench: {args.runs} run(s) per scenario ({args.ratio_runs} of 3, 3b, 3f and 5), "
        f"{'smoke' if args.smoke else 'full'} workload; work dir {workdir}")
    b = Bench(args, workdir)
    error = None
    try:
        b.run_all()
    except Exception as e:  # the figures so far are still written, then the failure is raised
        error = e
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    data: dict[str, Any] = {
        "meta": {"date": date, "machine": machine(), "workload": b.w.module, "runs": args.runs,
                 "ratio_runs": args.ratio_runs, "smoke": args.smoke,
                 "seconds_total": round(time.monotonic() - started, 1), "loadavg": [load0, loadavg()],
                 "notes": b.notes, "error": None if error is None else str(error)[-2000:]},
        "scenarios": b.scn, "ratios": [r.__dict__ for r in report.ratios(b.scn)],
        "breakdown": report.breakdown_data(b.scn, b.s3_parts, b.s3b_parts)}
    publish(data, args.out, args.readme and error is None)
    if error is not None:
        raise error
    return 0


if __name__ == "__main__":
    sys.exit(main())
