"""The replicas of the nodes' StatefulSets, through the API server's `scale` subresource (stdlib HTTPS).

The node -> StatefulSet map is the wake data of the stack's exported create script (idleStop on
Kubernetes: components/builder/wake.py); the calls are the ones the stack's CI ServiceAccount may make
(get and patch `statefulsets/scale` of the farm's StatefulSets), so `bkf` runs with the same token CI
wakes the farm with. The credentials are the create script's: $BKF_K8S_API (the API server's URL as
you reach it), $BKF_K8S_TOKEN and $BKF_K8S_CA, the last two falling back to the stack outputs
ciWakeToken and ciWakeCaCert. The token travels in a request header only, never in argv or a message.
"""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bkf.errors import UserError
from components.builder.wake import KubernetesWake, scale_path

#: seconds one API call may take
CALL_TIMEOUT = 30


@dataclass(frozen=True)
class Api:
    url: str
    token: str = field(repr=False)
    #: the cluster CA (PEM); None: the system's trust store
    ca: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Scale:
    #: the replicas asked for (what idle stop and wake set)
    spec: int
    #: the pods that exist (a pod being deleted still counts)
    status: int


def api_from(outputs: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Api:
    """The API server and credentials: the environment first (as for the create script), then the
    stack outputs for the token and CA. The URL is only ever in the environment: the stack knows the
    address its pods use, not the one you reach."""
    env = os.environ if env is None else env
    url = env.get("BKF_K8S_API", "").strip()
    if not url:
        raise UserError("the Kubernetes API server is unknown: set BKF_K8S_API to its URL as you reach it "
                        "(e.g. https://203.0.113.10:6443)")
    if not url.startswith("https://"):
        raise UserError(f"BKF_K8S_API must be an https:// URL, not {url!r}")
    token = (env.get("BKF_K8S_TOKEN") or str(outputs.get("ciWakeToken") or "")).strip()
    if not token:
        raise UserError("no token for the Kubernetes API: set BKF_K8S_TOKEN, or read the outputs with "
                        "--show-secrets (ciWakeToken)")
    if any(c.isspace() or not c.isprintable() for c in token):
        # http.client would refuse the header and quote it in its error
        raise UserError("the Kubernetes API token (BKF_K8S_TOKEN or ciWakeToken) has spaces or control "
                        "characters in it: it is one line of base64url")
    ca = env.get("BKF_K8S_CA") or outputs.get("ciWakeCaCert") or None
    return Api(url.rstrip("/"), token, str(ca) if ca else None)


def parse_scale(body: dict[str, Any]) -> Scale:
    """A Scale object as the API server returns it (it omits replicas when they are 0)."""
    return Scale(int((body.get("spec") or {}).get("replicas") or 0),
                 int((body.get("status") or {}).get("replicas") or 0))


def condition(scale: Scale) -> str:
    """A node's scale in the words apply_instance_states reads (components/status.py): at 0 it is
    stopped on purpose (stopping while its pod is still being deleted); at 1 or more it is waking
    (wanted up, not answering yet: the CI token may read the scale only, not the pod's readiness)."""
    if scale.spec == 0:
        return "stopping" if scale.status else "stopped"
    return "pending"


def _context(api: Api) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cadata=api.ca) if api.ca else ssl.create_default_context()
    except (ssl.SSLError, ValueError) as e:
        raise UserError(f"the cluster CA (BKF_K8S_CA or ciWakeCaCert) is not a PEM certificate: {e}") from None


def _call(api: Api, statefulset: str, wake: KubernetesWake, patch: dict[str, Any] | None = None) -> Scale:
    path = scale_path(wake.namespace, statefulset)
    what = f"{'patch' if patch is not None else 'get'} the scale of statefulset {wake.namespace}/{statefulset}"
    try:
        req = urllib.request.Request(
            api.url + path, method="PATCH" if patch is not None else "GET",
            data=json.dumps(patch).encode() if patch is not None else None,
            headers={"Authorization": f"Bearer {api.token}", "Accept": "application/json",
                     "Content-Type": "application/merge-patch+json"})
        with urllib.request.urlopen(req, context=_context(api), timeout=CALL_TIMEOUT) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise UserError(f"cannot {what}: {_refusal(e, api)}") from None
    except urllib.error.URLError as e:
        raise UserError(f"cannot {what}: no answer from {api.url}: {e.reason}") from None
    except (OSError, ValueError) as e:
        # a timeout, a reset, an odd URL or a header http.client refuses: never echo the request
        raise UserError(f"cannot {what} at {api.url}: {type(e).__name__}: {_redact(str(e), api)}") from None
    return parse_scale(body)


def _refusal(e: urllib.error.HTTPError, api: Api) -> str:
    """The API server's own reason (a Status object's message), with what to do for 401 and 403."""
    try:
        message = str(json.loads(e.read()).get("message") or e.reason)
    except (ValueError, OSError, AttributeError):
        message = str(e.reason)
    hint = {401: " (the token is not valid for this API server: BKF_K8S_TOKEN or ciWakeToken)",
            403: " (the token may only get and patch the scale of the farm's StatefulSets)"}.get(e.code, "")
    return f"HTTP {e.code}: {_redact(message, api)}{hint}"


def _redact(text: str, api: Api) -> str:
    return text.replace(api.token, "<token>") if api.token else text


def _statefulset(wake: KubernetesWake, node: str) -> str:
    if node not in wake.statefulsets:
        raise UserError(f"node {node} has no StatefulSet in the stack's wake data")
    return wake.statefulsets[node]


def scales(api: Api, wake: KubernetesWake, nodes: Sequence[str]) -> dict[str, Scale]:
    """node -> the scale of its StatefulSet, for those nodes that have one."""
    return {n: _call(api, wake.statefulsets[n], wake) for n in nodes if n in wake.statefulsets}


def scale_to(api: Api, wake: KubernetesWake, nodes: Sequence[str], count: int) -> None:
    """PATCH exactly these nodes' StatefulSets to `count` replicas."""
    for n in nodes:
        _call(api, _statefulset(wake, n), wake, {"spec": {"replicas": count}})


def wait(api: Api, wake: KubernetesWake, nodes: Sequence[str], count: int, timeout: float,
         every: float = 2) -> list[str]:
    """Block until these nodes' StatefulSets have `count` pods (status.replicas: created, not yet
    ready) or `timeout` passes; returns the nodes that did not get there."""
    deadline = time.monotonic() + timeout
    pending = list(nodes)
    while True:
        pending = [n for n in pending if _call(api, _statefulset(wake, n), wake).status != count]
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(every)
