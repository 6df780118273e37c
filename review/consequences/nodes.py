"""Consequences for nodes: added, removed, restarted, reinstalled; their cache; their payload.

A node is an SshNode, AwsNode or KubernetesNode component; what happens to it is read from
its children (the SSH command and its bootstrap payload, the EC2 instance and its volume, the
StatefulSet and its ConfigMap and Secret).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from review.consequences.context import Context
from review.consequences.pki import leaf
from review.policy import resources
from review.policy.payload import parse_env, payload_env, payload_files
from review.preview import Change


def _files(payload: Any) -> dict[str, str]:
    return payload_files(payload) if isinstance(payload, str) else {}


def payload_changes(old: Any, new: Any) -> list[str]:
    """Which parts of a bootstrap payload differ: "buildkitd.toml", "settings (KEY, ...)", "bkf-node.sh"."""
    a, b = _files(old), _files(new)
    out = []
    for path in sorted(set(a) | set(b), key=lambda p: (not p.endswith(".toml"), p)):
        if a.get(path) == b.get(path):
            continue
        base = path.rsplit("/", 1)[-1]
        if base == "node.env":
            ea, eb = parse_env(a.get(path, "")), parse_env(b.get(path, ""))
            keys = sorted(k for k in set(ea) | set(eb) if ea.get(k) != eb.get(k))
            out.append(f"node settings changed: {', '.join(keys)}" if keys else "node settings changed")
        else:
            out.append(f"{base} changed")
    if not out and old != new:
        out.append("its bootstrap commands changed")
    return out


def _env(payload: Any) -> dict[str, str]:
    return payload_env(payload) if isinstance(payload, str) else {}


def _platform(node: Change, ctx: Context) -> str | None:
    for ch in ctx.children(node.urn):
        inputs = ch.inputs()
        if ch.type == resources.REMOTE_COMMAND and _env(inputs.get("create")).get("BKF_PLATFORM"):
            return _env(inputs.get("create"))["BKF_PLATFORM"]
        if ch.type == resources.EC2_INSTANCE and isinstance(inputs.get("tags"), Mapping):
            tag = inputs["tags"].get("buildkit-farm/platform")
            if tag:
                return str(tag)
        if ch.type == resources.K8S_STATEFULSET:
            try:
                arch = resources.get(inputs, "spec", "template", "spec", "nodeSelector", "kubernetes.io/arch")
            except resources.UnknownValue:
                arch = None
            if arch:
                return f"linux/{arch}"
    return None


def node_lines(ctx: Context) -> list[str]:
    nodes = {c.urn: c for c in ctx.p.changes if c.type in resources.NODE_TYPES}
    for c in ctx.p.changes:  # the digest leaves unchanged components out: their children name them
        if c.parent and c.parent not in nodes and _urn_type(c.parent) in resources.NODE_TYPES:
            nodes[c.parent] = Change(op="same", urn=c.parent, type=_urn_type(c.parent))
    server_cert_replaced = {leaf(c, "server") for c in ctx.of_type(resources.TLS_LOCALLY_SIGNED)
                            if c.op == "replace" and leaf(c, "server")}
    lines: list[str] = []
    for urn, node in nodes.items():
        n = node.name
        kids = [c for c in ctx.changed() if c.parent == urn]
        platform = _platform(node, ctx)
        on = f" ({platform})" if platform else ""
        if node.op == "create":
            lines.append(f"new node {n}{on}: joins the builder; CI must recreate its builder (re-run "
                         "buildxCreateScript, or add the node to setup-buildx-action's `append`)")
            ctx.explained.update([urn, *(c.urn for c in kids)])
            ctx.explained.update(c.urn for c in ctx.changed() if leaf(c, "server") == n or
                                 c.name.startswith(f"{n}-address"))
            continue
        if node.op == "delete":
            lines.append(_removed_node_line(node, kids, platform, ctx))
            ctx.explained.update([urn, *(c.urn for c in kids)])
            ctx.explained.update(c.urn for c in ctx.changed() if leaf(c, "server") == n or
                                 c.name.startswith(f"{n}-address"))
            continue
        lines += _existing_node_lines(n, kids, n in server_cert_replaced, ctx)
    return lines


def _urn_type(urn: str) -> str:
    parts = urn.split("::")
    return parts[2].split("$")[-1] if len(parts) >= 4 else ""


def _removed_node_line(node: Change, kids: Sequence[Change], platform: str | None, ctx: Context) -> str:
    n = node.name
    on = f" ({platform})" if platform else ""
    cache = ""
    for k in kids:
        if k.type == resources.REMOTE_COMMAND and "uninstall" in str(k.old.get("delete") or ""):
            cache = ("; its cache is deleted (ssh.removeStateOnDestroy)" if "--purge-state" in str(k.old["delete"])
                     else "; its cache stays on the host")
        elif k.type == resources.EBS_VOLUME:
            cache = "; its cache volume is deleted with it"
        elif k.type == resources.K8S_STATEFULSET:
            cache = "; its cache PVC is retained"
    others = [c.name for c in ctx.p.changes if c.type in resources.NODE_TYPES and c.op != "delete"
              and platform and _platform(c, ctx) == platform]
    if platform and others:
        left = f"builds for {platform} go to {', '.join(others)}"
    elif platform:
        left = f"no node may be left for {platform} (then its builds fail)"
    else:
        left = "builds routed to it fail"
    return f"node {n}{on} removed: {left}; CI must recreate its builder{cache}"


def _existing_node_lines(n: str, kids: Sequence[Change], new_cert: bool, ctx: Context) -> list[str]:
    lines: list[str] = []
    restart: list[str] = []
    cut = "builds running on it are cut"
    volume = next((k for k in kids if k.type == resources.EBS_VOLUME), None)
    sts_updated = any(k.type == resources.K8S_STATEFULSET and k.op in ("update", "replace") for k in kids)
    for k in kids:
        said = True
        if k.type == resources.REMOTE_COMMAND and k.name.endswith("-buildkitd"):
            if k.op == "replace":
                lines.append(f"node {n} is reinstalled ({', '.join(k.replace_keys or k.diffs)}): its daemon restarts "
                             f"and {cut}; the cache stays")
                ctx.explained.add(k.urn)
                continue
            parts = payload_changes(k.old.get("create"), k.new.get("create")) if "create" in k.diffs else []
            if "stdin" in k.diffs:
                parts.append("new server certificate" if new_cert else "new certificates")
            if any(p.startswith(("buildkitd.toml", "node settings", "new ")) for p in parts):
                restart += [p for p in parts if not p.startswith("bkf-node.sh")]
            elif parts:
                lines.append(f"node {n}: {', '.join(parts)}; the daemon keeps running (it restarts only when its "
                             "config or certificates change)")
            if "delete" in k.diffs:
                old_purge = "--purge-state" in str(k.old.get("delete") or "")
                new_purge = "--purge-state" in str(k.new.get("delete") or "")
                if old_purge != new_purge:
                    verb = "deletes" if new_purge else "keeps"
                    lines.append(f"node {n}: `pulumi destroy` now {verb} its build cache")
                else:  # e.g. registries: added or removed: destroy also removes the registry CA files
                    lines.append(f"node {n}: what `pulumi destroy` removes besides the daemon changes (registry CA "
                                 "files); its build cache is unaffected")
            if "connection" in k.diffs:
                lines.append(f"node {n}: how Pulumi reaches it over SSH changes (no restart by itself)")
            said = bool(set(k.diffs) & {"create", "stdin", "delete", "connection"})
        elif k.type == resources.EBS_VOLUME and k.op in ("replace", "delete"):
            lines.append(f"data volume of {n} {'replaced' if k.op == 'replace' else 'deleted'}: its cache is lost")
        elif k.type == resources.EBS_VOLUME and k.op == "update":
            size = (k.old.get("size"), k.new.get("size"))
            grow = f" grows from {size[0]:g} to {size[1]:g} GiB" if "size" in k.diffs and None not in size else ""
            lines.append(f"data volume of {n}{grow or ' changes'} in place ({', '.join(k.diffs)}): "
                         "no restart, the cache stays")
        elif k.type == resources.EC2_INSTANCE and k.op == "replace":
            kept = volume is None or volume.op not in ("replace", "delete")
            lines.append(f"instance of {n} replaced ({', '.join(k.replace_keys or k.diffs)})"
                         + (", cache volume kept: first build is cold-started" if kept else "")
                         + f"; the node is down until the new instance boots and {cut}")
        elif k.type == resources.EC2_INSTANCE and k.op == "update" and \
                set(k.diffs) & {"userDataBase64", "userData", "instanceType"}:
            if "userDataBase64" in k.diffs or "userData" in k.diffs:
                restart.append("its bootstrap payload changed: the instance stops and starts")
            if "instanceType" in k.diffs:
                restart.append(f"instance type {k.old.get('instanceType')} -> {k.new.get('instanceType')}: "
                               "the instance stops and starts")
            said = set(k.diffs) <= {"userDataBase64", "userData", "instanceType", "tags"}
        elif k.type in (resources.SSM_PARAMETER, "aws:ssm/association:Association") and k.op == "update":
            restart.append("new certificates: SSM runs `bkf-node.sh certs`")
        elif k.type == resources.K8S_STATEFULSET and k.op == "replace":
            lines.append(f"StatefulSet of {n} replaced ({', '.join(k.replace_keys or k.diffs)}): the pod restarts "
                         f"and {cut}; its cache PVC is retained")
        elif k.type == resources.K8S_STATEFULSET and k.op == "update":
            restart.append(_statefulset_reasons(k))
        elif k.type in (resources.K8S_CONFIG_MAP, "kubernetes:core/v1:Secret") and k.op == "update" and sts_updated:
            pass  # reaches the pod through the StatefulSet's checksum annotations: the restart line says it
        else:
            said = False
        if said:
            ctx.explained.add(k.urn)
    if restart:
        drain = _drain_seconds(kids)
        how = (f"it drains first (builds in flight get up to {drain} s), then new builds go to the new pod"
               if drain else cut)
        reasons = ", ".join(dict.fromkeys(restart))
        lines.insert(0, f"node {n} restarts ({reasons}): {how}")
    return lines


def _statefulset_reasons(k: Change) -> str:
    old, new = json.dumps(k.old, sort_keys=True), json.dumps(k.new, sort_keys=True)
    reasons = []
    for key, words in (("config-sha256", "buildkitd.toml changed"), ("tls-sha256", "new certificates")):
        pattern = rf'"buildkit-farm/{key}": ("[^"]*")'
        if re.findall(pattern, old) != re.findall(pattern, new):
            reasons.append(words)
    if re.findall(r'"image": ("[^"]*")', old) != re.findall(r'"image": ("[^"]*")', new):
        reasons.append("new image")
    return ", ".join(reasons) or f"pod spec changed ({', '.join(k.diffs)})"


def _drain_seconds(kids: Sequence[Change]) -> int | None:
    for k in kids:
        if k.type == resources.K8S_STATEFULSET:
            try:
                grace = resources.get(k.new, "spec", "template", "spec", "terminationGracePeriodSeconds")
                hooks = json.dumps(k.new).count("preStop")
            except resources.UnknownValue:
                return None
            if hooks and isinstance(grace, int | float):
                return int(grace)
    return None
