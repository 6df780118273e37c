"""The EC2 state of the nodes' instances, through the `aws` CLI (its usual credentials and settings).

The node -> instance map is the wake data of the stack's exported create script (idle stop on AWS:
components/builder/wake.py); the calls are the ones the stack's ciWakePolicy allows (describe, start).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

from bkf.errors import UserError
from components.builder.wake import Wake


def _aws(wake: Wake, *args: str) -> str:
    r = subprocess.run(["aws", "ec2", *args, "--region", wake.region], capture_output=True, text=True)
    if r.returncode != 0:
        lines = [x.strip() for x in r.stderr.splitlines() if x.strip()]
        raise UserError(f"aws ec2 {args[0]} failed: {lines[-1] if lines else f'exit {r.returncode}'}")
    return r.stdout


def instance_states(wake: Wake, nodes: Sequence[str]) -> dict[str, str]:
    """node -> EC2 state (running, stopped, stopping, pending...) of those nodes that have an instance."""
    ids = {wake.instance_ids[n]: n for n in nodes if n in wake.instance_ids}
    if not ids:
        return {}
    if not shutil.which("aws"):
        raise UserError("the instances' state needs the aws CLI on PATH")
    out = _aws(wake, "describe-instances", "--instance-ids", *ids,
               "--query", "Reservations[].Instances[].[InstanceId,State.Name]", "--output", "text")
    states = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ids:
            states[ids[parts[0]]] = parts[1]
    return states


def start(wake: Wake, nodes: Sequence[str]) -> None:
    _aws(wake, "start-instances", "--instance-ids", *(wake.instance_ids[n] for n in nodes))


def wait(wake: Wake, state: str, nodes: Sequence[str]) -> None:
    """Block until the instances reach `instance-<state>` (the CLI's own waiter)."""
    _aws(wake, "wait", f"instance-{state}", "--instance-ids", *(wake.instance_ids[n] for n in nodes))
