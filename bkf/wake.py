"""Waking stopped nodes for `bkf wake`, and telling a stopped node from a down one for `bkf status` and
`bkf insights`: AWS (bkf/aws.py: EC2 instances) and Kubernetes (bkf/k8s.py: StatefulSets at 0), from
the wake data of the stack's create script; both end in the same wait for each node's mTLS."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from bkf import aws, k8s
from bkf.errors import UserError
from bkf.stack import client_tls
from components import status as st
from components.builder.wake import AnyWake, KubernetesWake, Wake, parse_wake

#: prints one line (the command's console)
Say = Callable[[str], None]


def wake_data(outputs: dict[str, Any]) -> AnyWake | None:
    script = outputs.get("buildxCreateScript")
    return parse_wake(script) if isinstance(script, str) else None


def silent_states(data: dict[str, Any], silent: Sequence[str], warn: Say) -> dict[str, str]:
    """Why the nodes that did not answer are silent, when the stack has wake data (else nothing: a
    silent node is then down): the EC2 state of their instances (AWS), or their StatefulSets' scale
    in the same words (Kubernetes: k8s.condition); what components.status.apply_instance_states reads."""
    wake = wake_data(data)
    if not wake or not silent:
        return {}
    try:
        if isinstance(wake, KubernetesWake):
            return {n: k8s.condition(s) for n, s in k8s.scales(k8s.api_from(data), wake, silent).items()}
        return aws.instance_states(wake, silent)
    except UserError as e:
        warn(f"bkf: cannot tell a stopped node from a down one: {e}")
        return {}


def start_instances(wd: Wake, names: Sequence[str], say: Say) -> tuple[list[str], list[str], float]:
    """AWS: start the stopped instances among these nodes and wait until they run."""
    states = aws.instance_states(wd, names)
    for n in names:
        say(f"{n}: {states.get(n, 'no instance')}")
    stopping = [n for n in names if states.get(n) == "stopping"]
    if stopping:
        say(f"{', '.join(stopping)}: waiting for the stop to finish")
        aws.wait(wd, "stopped", stopping)
    stopped = [n for n in names if states.get(n) in ("stopped", "stopping")]
    t0 = time.monotonic()
    if not stopped:
        return [], [], t0
    aws.start(wd, stopped)
    say(f"{', '.join(stopped)}: starting")
    aws.wait(wd, "running", stopped)
    say(f"{', '.join(stopped)}: running after {time.monotonic() - t0:.0f} s, waiting for mTLS")
    return stopped, [], t0


def scale_up(data: dict[str, Any], wd: KubernetesWake, names: Sequence[str], timeout: float,
             say: Say) -> tuple[list[str], list[str], float]:
    """Kubernetes: scale exactly those of these nodes whose StatefulSet is at 0 to 1 and wait for
    their pods: (the nodes whose pod was created, those whose pod was not within `timeout`)."""
    api = k8s.api_from(data)
    scales = k8s.scales(api, wd, names)
    for n in names:
        s = scales.get(n)
        say(f"{n}: " + ("no statefulset" if s is None else "scaled to 0" if s.spec == 0
                              else f"{s.spec} replica{'s' if s.spec > 1 else ''}"))
    at_zero = [n for n in names if n in scales and scales[n].spec == 0]
    t0 = time.monotonic()
    if not at_zero:
        return [], [], t0
    k8s.scale_to(api, wd, at_zero, 1)
    for n in at_zero:
        say(f"{n}: scaled statefulset {wd.namespace}/{wd.statefulsets[n]} to 1")
    missing = k8s.wait(api, wd, at_zero, 1, timeout)
    created = [n for n in at_zero if n not in missing]
    if created:
        say(f"{', '.join(created)}: pod created after {time.monotonic() - t0:.0f} s, waiting for mTLS")
    for n in missing:
        say(f"{n}: no pod after {timeout:.0f} s")
    return created, missing, t0


def await_mtls(data: dict[str, Any], client: str | None, names: Sequence[str], t0: float, timeout: float,
               since: str, say: Say) -> list[str]:
    """Wait until each of these (just started) nodes answers mTLS, a line per node; the nodes that did
    not within `timeout`. Both backends' wake ends here."""
    if not names:
        return []
    by_name = {n["name"]: n for n in data["nodes"]}
    with client_tls(data, client) as tls:
        pending = set(names)
        deadline = time.monotonic() + timeout
        said: dict[str, float] = {}
        while pending:
            for n in sorted(pending):
                node = st.node_status(by_name[n], tls, timeout=10)
                now = time.monotonic()
                if node.reachable:
                    say(f"{n}: answers mTLS {now - t0:.0f} s after {since}")
                    pending.discard(n)
                elif now - said.get(n, -30.0) >= 30:  # a line per node every 30 s while it boots
                    said[n] = now
                    say(f"{n}: not yet ({now - t0:.0f} s): {node.error}")
            if pending and time.monotonic() >= deadline:
                return sorted(pending)
            if pending:
                time.sleep(5)
    return []
