"""The `bkf` command: one entry point for the farm's operator tools (Typer; tables and progress in Rich).

Exit codes, for every command:

- 0: all good (every node up, or stopped on purpose by idle stop);
- 1: a node is down or failed (status, insights, wake), or the create script failed (its own code);
- 2: a usage or input error (a missing stack, file, tool or input), printed as one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from bkf import wake as wk
from bkf.errors import NODE_DOWN, OK, USAGE, UserError
from bkf.stack import client_pems, client_tls, need, read_outputs
from components import status as st
from components.builder.wake import KubernetesWake
from components.insights import GroupBy


class By(StrEnum):
    repo = "repo"
    node = "node"
    day = "day"


class _Group(TyperGroup):
    """Turns a UserError from any command into one line on stderr and its exit code."""

    # ctx is typer's (privately vendored) click Context
    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as e:
            typer.echo(f"bkf: {e}", err=True)
            raise typer.Exit(e.exit_code) from None


app = typer.Typer(cls=_Group, help=__doc__, no_args_is_help=True, add_completion=False, rich_markup_mode="markdown",
                  pretty_exceptions_enable=False)
builder = typer.Typer(cls=_Group, help="The buildx builder CI and people build with.", no_args_is_help=True,
                      rich_markup_mode="markdown")
app.add_typer(builder, name="builder")

Stack = Annotated[str | None, typer.Option(help="read the outputs with `pulumi stack output` for this stack")]
Outputs = Annotated[str | None, typer.Option(
    help="a file of `pulumi stack output --json --show-secrets` ('-': stdin; piped stdin is read too)")]
Client = Annotated[str | None, typer.Option(help="a client name of pki.clients (default: the first)")]
Json = Annotated[bool, typer.Option("--json", help="machine-readable output")]

# node errors and repository names are data, never Rich markup or emoji codes (":1234:" in an address)
out = Console(highlight=False, markup=False, emoji=False)
err = Console(stderr=True, highlight=False, markup=False, emoji=False)


def say(line: str) -> None:
    """One line of progress, never wrapped at the console's width (a line per node, greppable in CI logs)."""
    out.print(line, soft_wrap=True)


def warn(line: str) -> None:
    err.print(line, soft_wrap=True)


@app.command()
def status(stack: Stack = None, outputs: Outputs = None, client: Client = None, json_: Json = False,
           timeout: Annotated[float, typer.Option(help="seconds per node call")] = 15) -> None:
    """Every node as its own daemon reports it; a node stopped by idle stop shows as `stopped` (exit 0).

    A node is stopped on purpose when it does not answer and idle stop stopped it: on AWS its EC2
    instance is stopped or stopping (`waking`: pending), from `aws ec2 describe-instances`; on
    Kubernetes its StatefulSet is at 0 replicas (`waking`: at 1), from the API server's `scale`
    subresource ($BKF_K8S_API, with the stack's ciWakeToken and ciWakeCaCert unless $BKF_K8S_TOKEN and
    $BKF_K8S_CA say otherwise). Which nodes have an instance or StatefulSet is the wake data of the
    stack's create script (idleStop). Without it (no idle stop), or without the aws CLI or the API
    server's URL, a node that does not answer is DOWN (exit 1).
    """
    data = read_outputs(stack, outputs)
    need("buildctl", "farm status")
    with client_tls(data, client) as tls:
        nodes = st.farm_status(data["nodes"], tls, timeout)
    st.apply_instance_states(nodes, wk.silent_states(data, [n.name for n in nodes if not n.reachable], warn))
    if json_:
        sys.stdout.write(json.dumps([asdict(n) for n in nodes], indent=2) + "\n")
    else:
        sys.stdout.write(st.render_table(nodes))
    raise typer.Exit(OK if st.healthy(nodes) else NODE_DOWN)


@app.command()
def wake(nodes: Annotated[list[str] | None, typer.Argument(help="nodes to wake (default: every node)")] = None,
         stack: Stack = None, outputs: Outputs = None, client: Client = None,
         timeout: Annotated[float, typer.Option(help="seconds to wait for each node's mTLS")] = 600) -> None:
    """Start the stopped nodes (idle stop) and wait until each answers mTLS, a line per node.

    AWS: starts the stopped instances. Kubernetes: scales the StatefulSets at 0 to 1 through the API
    server ($BKF_K8S_API; the token and CA as for `bkf status`).
    """
    data = read_outputs(stack, outputs)
    wd = wk.wake_data(data)
    if wd is None:
        out.print("nothing to wake: this stack has no idle stop")
        raise typer.Exit(OK)
    names = list(nodes or [n["name"] for n in data["nodes"]])
    unknown = sorted(set(names) - {n["name"] for n in data["nodes"]})
    if unknown:
        raise UserError(f"no node {', '.join(unknown)} in this stack")
    need("buildctl", "waiting for a node")
    # the nodes started (their pods created), those that did not get there, and since when
    if isinstance(wd, KubernetesWake):
        woken, late, t0 = wk.scale_up(data, wd, names, timeout, say)
        since = "its scale to 1"
    else:
        woken, late, t0 = wk.start_instances(wd, names, say)
        since = "its start"
    if not woken and not late:
        out.print("nothing stopped")
        raise typer.Exit(OK)
    late += wk.await_mtls(data, client, woken, t0, timeout, since, say)
    if late:
        err.print(f"bkf: {', '.join(late)} did not answer within {timeout:.0f} s")
        raise typer.Exit(NODE_DOWN)


@builder.command("create")
def builder_create(key: Annotated[str | None, typer.Option(
                       help="orders each platform's nodes (e.g. the repository); default $BKF_KEY")] = None,
                   stack: Stack = None, outputs: Outputs = None, client: Client = None) -> None:
    """Create the buildx builder by running the stack's own create script (same order and failover)."""
    data = read_outputs(stack, outputs)
    script = data.get("buildxCreateScript")
    if not isinstance(script, str):
        raise UserError("the stack outputs have no buildxCreateScript")
    cert, pem_key = client_pems(data, client)
    args: list[str] = []
    if key:
        if "--key)" in script:
            args = ["--key", key]
        else:
            err.print("bkf: this farm has one node per platform: the key changes nothing")
    env = {**os.environ, "BKF_TLS_CA": data["caCert"], "BKF_TLS_CERT": cert, "BKF_TLS_KEY": pem_key}
    with tempfile.TemporaryDirectory(prefix="bkf-create-") as d:
        path = Path(d, "create.sh")
        path.write_text(script)
        rc = subprocess.run(["bash", str(path), *args], env=env).returncode
    raise typer.Exit(rc)


@app.command()
def summary(preview: Annotated[str, typer.Argument(help="`pulumi preview --json` output ('-': stdin)")]) -> None:
    """The review summary (Markdown) of a preview, for a pull-request comment."""
    from review.summary import parse, render

    if preview == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(preview).read_text()
        except OSError as e:
            raise UserError(f"cannot read the preview: {e.strerror}: {preview}") from None
    if not text.strip():
        raise UserError(f"the preview is empty ({'stdin' if preview == '-' else preview})")
    try:
        parsed = parse(text)
    except ValueError as e:
        raise UserError(f"cannot read the preview: {e}") from None
    sys.stdout.write(render(parsed))


@app.command()
def insights(stack: Stack = None, outputs: Outputs = None, client: Client = None, json_: Json = False,
             by: Annotated[By, typer.Option(help="one row per repository, node or day")] = By.repo,
             chart: Annotated[Path | None, typer.Option(help="also draw a PNG chart here")] = None,
             timeout: Annotated[float, typer.Option(help="seconds per node")] = 30) -> None:
    """Builds, failures, p50/p95, cache hit ratio and time saved, from every node's build history.

    A node that does not answer is down (exit 1), or stopped when idle stop stopped it (exit 0).
    """
    from bkf import insights as ins
    from components.insights import report

    data = read_outputs(stack, outputs)
    need("buildctl", "farm insights")
    with client_tls(data, client) as tls:
        builds, errors = ins.collect(data["nodes"], tls, timeout)
    group: GroupBy = by.value
    rows = report(builds, group)
    stopped = {n: st.STOPPED_ON_PURPOSE[s] for n, s in wk.silent_states(data, list(errors), warn).items()
               if s in st.STOPPED_ON_PURPOSE}
    down = {n: e for n, e in errors.items() if n not in stopped}
    states = {n["name"]: stopped.get(n["name"]) or (f"down: {down[n['name']]}" if n["name"] in down else "up")
              for n in data["nodes"]}
    if chart:
        ins.chart(rows, group, chart)
    if json_:
        sys.stdout.write(json.dumps(ins.as_json(rows, group, states), indent=2) + "\n")
    else:
        out.print(ins.table(rows, group))
        running = sum(b.ended is None for b in builds)
        out.print(f"{sum(r.builds for r in rows)} builds finished, {running} running, on "
                  f"{len(states) - len(errors)} of {len(states)} nodes")
        for name, state in stopped.items():
            out.print(f"{name}: {state} (idle stop): its history is read when it runs again")
        for name, e in down.items():
            out.print(f"{name}: down ({e})")
    raise typer.Exit(NODE_DOWN if down else OK)


@app.command()
def load(image: Annotated[str, typer.Argument(help="the name to load it as in the local engine, e.g. app:dev")],
         context: Annotated[str, typer.Argument(help="the build context")] = ".",
         via: Annotated[str | None, typer.Option(
             help="the registry beside the farm that the nodes push to and this engine pulls from (host[:port]); "
                  "default $BKF_LOAD_REGISTRY")] = None,
         builder_: Annotated[str | None, typer.Option("--builder", help="the buildx builder (default: buildx's)")]
         = None,
         platform: Annotated[str | None, typer.Option(help="default: the local engine's platform")] = None,
         file: Annotated[str | None, typer.Option("--file", "-f", help="the Dockerfile")] = None,
         build_arg: Annotated[list[str] | None, typer.Option("--build-arg", help="KEY=VALUE, repeatable")] = None,
         ) -> None:
    """Build on the farm and load the image into the local Docker engine through a registry.

    Instead of `--load` (the whole image from the node to this engine on every build), the nodes push
    to the registry beside the farm and `docker pull` fetches only the layers this engine lacks:
    after a small change, the small top layer. The image is then tagged IMAGE. The engine must
    trust the registry (its CA, as for any pull). Exit: the failing command's own code.
    """
    from bkf import load as ld

    # every input problem in one line: the name and registry's (staging_ref), then the context's
    problems = [] if "://" in context or Path(context).is_dir() else [f"CONTEXT: no directory {context}"]
    try:
        ref = ld.staging_ref(image, via or os.environ.get("BKF_LOAD_REGISTRY"))
    except UserError as e:
        problems.insert(0, str(e))
    if problems:
        raise UserError("; ".join(problems))
    buildx = ld.buildx_argv()
    need("docker", "bkf load")
    if not platform:
        v = subprocess.run(["docker", "version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"], capture_output=True,
                           text=True)
        if v.returncode != 0:
            last = (v.stderr.strip().splitlines() or ["no answer"])[-1]
            raise UserError(f"no Docker engine answers (docker version: {last})")
        platform = v.stdout.strip()
    args = ["--builder", builder_] if builder_ else []
    args += ["--file", file] if file else []
    for a in build_arg or []:
        args += ["--build-arg", a]
    steps = [("build + push", [*buildx, "build", *args, "--platform", platform, "--push", "-t", ref, context]),
             ("pull", ["docker", "pull", ref]), ("tag", ["docker", "tag", ref, image])]
    took = []
    for what, argv in steps:
        t0 = time.monotonic()
        rc = subprocess.run(argv).returncode
        if rc != 0:
            err.print(f"bkf: {what} failed (exit {rc}): {' '.join(argv)}", soft_wrap=True)
            raise typer.Exit(rc)
        took.append(f"{what} {time.monotonic() - t0:.1f} s")
    say(f"loaded {image} ({platform}) through {ref}: {', '.join(took)}")


def main(argv: Sequence[str] | None = None) -> None:
    app(args=list(argv) if argv is not None else None, prog_name="bkf")


__all__ = ["USAGE", "app", "main"]
