"""A pull-request comment from `pulumi preview --json`: what the change means for people who build.

    pulumi preview --json > preview.json && python -m review.summary preview.json
    pulumi preview --json | python -m review.summary

Reads either form the CLI writes: the digest of `pulumi preview --json` (one JSON object with
`steps` and `changeSummary`), or the engine events it streams with
PULUMI_ENABLE_STREAMING_JSON_PREVIEW=true (one JSON object per line), which also carries the
policy pack's findings (the digest leaves policy events out). Prints Markdown: the counts by
operation, one line per consequence in plain words, the changes no rule explains, then the
policy findings. Pure functions over the parsed JSON; no Pulumi needed.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from review.policy import checks

#: op -> (symbol, words), in the order the counts are printed
OPS: dict[str, tuple[str, str]] = {
    "create": ("+", "to create"),
    "update": ("~", "to update"),
    "replace": ("+-", "to replace"),
    "delete": ("-", "to delete"),
    "import": ("=", "to import"),
    "read": (">", "to read"),
    "refresh": ("~", "to refresh"),
    "same": (" ", "unchanged"),
}
#: ops that are parts of a replacement (create-before-delete or delete-before-replace)
REPLACE_PARTS = {"create-replacement": "replace", "delete-replaced": "replace", "replace": "replace",
                 "import-replacement": "replace", "read-replacement": "replace",
                 "remove-pending-replace": "replace", "discard": "delete", "read-discard": "delete"}
_RANK = {"replace": 5, "delete": 4, "create": 3, "update": 2, "import": 1, "read": 1, "refresh": 1, "same": 0}
CERT_REQUEST = "tls:index/certRequest:CertRequest"
PKI_LEAVES = (checks.TLS_LOCALLY_SIGNED, checks.TLS_PRIVATE_KEY, CERT_REQUEST)


@dataclass(frozen=True)
class Change:
    """One resource in the preview, with its old and new inputs (empty when absent)."""

    op: str
    urn: str
    type: str
    diffs: tuple[str, ...] = ()
    replace_keys: tuple[str, ...] = ()
    old: Mapping[str, Any] = field(default_factory=dict)
    new: Mapping[str, Any] = field(default_factory=dict)
    parent: str | None = None

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]

    @property
    def parent_types(self) -> tuple[str, ...]:
        parts = self.urn.split("::")
        return tuple(parts[2].split("$")[:-1]) if len(parts) >= 4 else ()

    @property
    def short_type(self) -> str:
        return self.type.rsplit(":", 1)[-1]

    def inputs(self) -> Mapping[str, Any]:
        """The new inputs, or the old ones for a delete."""
        return self.new or self.old


@dataclass(frozen=True)
class PolicyFinding:
    policy: str
    level: str
    message: str
    urn: str | None = None


@dataclass(frozen=True)
class Preview:
    changes: tuple[Change, ...]
    counts: Mapping[str, int]
    policies: tuple[PolicyFinding, ...] = ()
    failed: bool = False


# ---------------------------------------------------------------------------------------------
# Reading both JSON forms


def _top(path: str) -> str:
    """The top-level property of a detailed-diff path ("spec.template[0].x" -> "spec")."""
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def _merge(a: Change, b: Change) -> Change:
    op = a.op if _RANK.get(a.op, 0) >= _RANK.get(b.op, 0) else b.op
    return Change(op=op, urn=a.urn, type=a.type or b.type,
                  diffs=tuple(dict.fromkeys(a.diffs + b.diffs)),
                  replace_keys=tuple(dict.fromkeys(a.replace_keys + b.replace_keys)),
                  old=a.old or b.old, new=a.new or b.new, parent=a.parent or b.parent)


def _change(op: str, urn: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None,
            diffs: Iterable[str], detailed: Mapping[str, Any] | None, replace: Iterable[str]) -> Change:
    op = REPLACE_PARTS.get(op, op)
    old, new = old or {}, new or {}
    detailed = detailed or {}
    keys = [*diffs, *detailed.keys()]
    replace_keys = [*replace, *(k for k, v in detailed.items()
                                if isinstance(v, Mapping) and str(v.get("kind") or v.get("diffKind") or "")
                                .endswith("-replace"))]
    return Change(op=op, urn=urn, type=str(new.get("type") or old.get("type") or urn.split("::")[2].split("$")[-1]),
                  diffs=tuple(dict.fromkeys(_top(k) for k in keys)),
                  replace_keys=tuple(dict.fromkeys(_top(k) for k in replace_keys)),
                  old=old.get("inputs") or {}, new=new.get("inputs") or {},
                  parent=new.get("parent") or old.get("parent"))


def parse(text: str) -> Preview:
    """A preview from `pulumi preview --json` output (digest or streamed engine events)."""
    text = text.strip()
    if not text:
        raise ValueError("empty input: expected the output of `pulumi preview --json`")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None
    if isinstance(doc, Mapping) and "steps" in doc:
        return _parse_digest(doc)
    events = [doc] if isinstance(doc, Mapping) else [json.loads(line) for line in text.splitlines() if line.strip()]
    return _parse_events(events)


def _collect(changes: Iterable[Change]) -> tuple[Change, ...]:
    by_urn: dict[str, Change] = {}
    for c in changes:
        by_urn[c.urn] = _merge(by_urn[c.urn], c) if c.urn in by_urn else c
    return tuple(by_urn.values())


def _parse_digest(doc: Mapping[str, Any]) -> Preview:
    changes = [_change(str(s.get("op")), str(s.get("urn")), s.get("oldState"), s.get("newState"),
                       s.get("diffReasons") or [], s.get("detailedDiff"), s.get("replaceReasons") or [])
               for s in doc.get("steps") or []]
    counts = dict(doc.get("changeSummary") or {})
    failed = any(d.get("severity") == "error" for d in doc.get("diagnostics") or [] if isinstance(d, Mapping))
    return Preview(_collect(changes), counts or _count(changes), (), failed)


def _parse_events(events: Sequence[Mapping[str, Any]]) -> Preview:
    changes: list[Change] = []
    policies: list[PolicyFinding] = []
    counts: dict[str, int] = {}
    failed = False
    for e in events:
        if "resourcePreEvent" in e:
            m = e["resourcePreEvent"].get("metadata") or {}
            changes.append(_change(str(m.get("op")), str(m.get("urn")), m.get("old"), m.get("new"),
                                   m.get("diffs") or [], m.get("detailedDiff"), []))
        elif "policyEvent" in e:
            p = e["policyEvent"]
            lines = [ln for ln in str(p.get("message") or "").splitlines() if ln.strip()]
            policies.append(PolicyFinding(policy=str(p.get("policyName")), level=str(p.get("enforcementLevel")),
                                          message=" ".join(lines[1:] or lines), urn=p.get("resourceUrn") or None))
        elif "summaryEvent" in e:
            counts = dict(e["summaryEvent"].get("resourceChanges") or {})
            failed = failed or e["summaryEvent"].get("result") not in (None, "succeeded")
        elif "diagnosticEvent" in e and e["diagnosticEvent"].get("severity") == "error":
            failed = True
    collected = _collect(changes)
    return Preview(collected, counts or _count(collected), tuple(policies), failed)


def _count(changes: Iterable[Change]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in changes:
        out[c.op] = out.get(c.op, 0) + 1
    return out


# ---------------------------------------------------------------------------------------------
# What changed inside a node's bootstrap payload


def _files(payload: Any) -> dict[str, str]:
    return checks.payload_files(payload) if isinstance(payload, str) else {}


def payload_changes(old: Any, new: Any) -> list[str]:
    """Which parts of a bootstrap payload differ: "buildkitd.toml", "settings (KEY, ...)", "bkf-node.sh"."""
    a, b = _files(old), _files(new)
    out = []
    for path in sorted(set(a) | set(b), key=lambda p: (not p.endswith(".toml"), p)):
        if a.get(path) == b.get(path):
            continue
        base = path.rsplit("/", 1)[-1]
        if base == "node.env":
            ea, eb = checks.parse_env(a.get(path, "")), checks.parse_env(b.get(path, ""))
            keys = sorted(k for k in set(ea) | set(eb) if ea.get(k) != eb.get(k))
            out.append(f"node settings changed: {', '.join(keys)}" if keys else "node settings changed")
        else:
            out.append(f"{base} changed")
    if not out and old != new:
        out.append("its bootstrap commands changed")
    return out


def _env(payload: Any) -> dict[str, str]:
    return checks.payload_env(payload) if isinstance(payload, str) else {}


# ---------------------------------------------------------------------------------------------
# Consequences


@dataclass
class _Ctx:
    p: Preview
    explained: set[str] = field(default_factory=set)

    def changed(self) -> list[Change]:
        return [c for c in self.p.changes if c.op != "same"]

    def of_type(self, *types: str) -> list[Change]:
        return [c for c in self.changed() if c.type in types]

    def children(self, parent_urn: str) -> list[Change]:
        return [c for c in self.p.changes if c.parent == parent_urn]


def _node_of(c: Change, nodes: Mapping[str, Change]) -> Change | None:
    return nodes.get(c.parent or "")


def _platform(node: Change, ctx: _Ctx) -> str | None:
    for ch in ctx.children(node.urn):
        inputs = ch.inputs()
        if ch.type == checks.REMOTE_COMMAND and _env(inputs.get("create")).get("BKF_PLATFORM"):
            return _env(inputs.get("create"))["BKF_PLATFORM"]
        if ch.type == checks.EC2_INSTANCE and isinstance(inputs.get("tags"), Mapping):
            tag = inputs["tags"].get("buildkit-farm/platform")
            if tag:
                return str(tag)
        if ch.type == checks.K8S_STATEFULSET:
            try:
                arch = checks.get(inputs, "spec", "template", "spec", "nodeSelector", "kubernetes.io/arch")
            except checks.UnknownValue:
                arch = None
            if arch:
                return f"linux/{arch}"
    return None


def _ca_lines(ctx: _Ctx) -> list[str]:
    cas = [c for c in ctx.of_type(checks.TLS_SELF_SIGNED) if c.inputs().get("isCaCertificate") is True]
    lines = []
    for ca in cas:
        if ca.op == "replace":
            lines.append("CA replaced: every client cert changes; update CI secrets (caCert, clientCert, clientKey)")
            # everything signed by it follows; the node and builder lines still say what restarts
            pki = ca.urn.split("::")[2].split("$")[0]
            ctx.explained.update(c.urn for c in ctx.changed() if c.type in PKI_LEAVES
                                 and c.urn.split("::")[2].split("$")[0] == pki)
        elif ca.op == "create":
            lines.append("new CA: after `up`, give CI the new caCert, clientCert and clientKey")
        elif ca.op == "delete":
            lines.append("CA deleted: every certificate of this farm stops being trusted")
        elif ca.op == "update":
            lines.append(f"CA updated in place ({', '.join(ca.diffs)}): the certificate itself stays the same")
        ctx.explained.add(ca.urn)
        # the CA's own key goes with it
        ctx.explained.update(c.urn for c in ctx.of_type(checks.TLS_PRIVATE_KEY) if c.name == f"{ca.name}-key")
    return lines


def _leaf(c: Change, kind: str) -> str | None:
    m = re.search(rf"-{kind}-(.+)-(?:cert|key|csr)$", c.name)
    return m.group(1) if m else None


def _client_lines(ctx: _Ctx) -> list[str]:
    lines = []
    for cert in ctx.of_type(checks.TLS_LOCALLY_SIGNED):
        client = _leaf(cert, "client")
        uses = cert.inputs().get("allowedUses") or []
        if client is None and "client_auth" not in uses:
            continue
        client = client or cert.name
        if cert.urn in ctx.explained:  # a CA replacement already said it
            continue
        key_replaced = any(_leaf(k, "client") == client and k.op == "replace"
                           for k in ctx.of_type(checks.TLS_PRIVATE_KEY))
        why = f" ({', '.join(cert.replace_keys or cert.diffs)})" if (cert.replace_keys or cert.diffs) else ""
        secrets = "clientCert, clientKey" if key_replaced else "clientCert"
        if cert.op == "replace":
            lines.append(f"client cert {client} replaced{why}: update CI secrets ({secrets}; "
                         f"clientCerts.{client} if {client} is not the first client)")
        elif cert.op == "create":
            lines.append(f"new client cert {client}: hand clientCerts.{client} and clientKeys.{client} to its consumer")
        elif cert.op == "delete":
            lines.append(f"client cert {client} removed: whoever holds it can no longer build")
        else:
            continue
        ctx.explained.add(cert.urn)
        ctx.explained.update(c.urn for c in ctx.changed() if _leaf(c, "client") == client)
    return lines


def _node_lines(ctx: _Ctx) -> list[str]:
    nodes = {c.urn: c for c in ctx.p.changes if c.type in checks.NODE_TYPES}
    for c in ctx.p.changes:  # the digest leaves unchanged components out: their children name them
        if c.parent and c.parent not in nodes and _urn_type(c.parent) in checks.NODE_TYPES:
            nodes[c.parent] = Change(op="same", urn=c.parent, type=_urn_type(c.parent))
    server_cert_replaced = {_leaf(c, "server") for c in ctx.of_type(checks.TLS_LOCALLY_SIGNED)
                            if c.op == "replace" and _leaf(c, "server")}
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
            ctx.explained.update(c.urn for c in ctx.changed() if _leaf(c, "server") == n or
                                 c.name.startswith(f"{n}-address"))
            continue
        if node.op == "delete":
            lines.append(_removed_node_line(node, kids, platform, ctx))
            ctx.explained.update([urn, *(c.urn for c in kids)])
            ctx.explained.update(c.urn for c in ctx.changed() if _leaf(c, "server") == n or
                                 c.name.startswith(f"{n}-address"))
            continue
        lines += _existing_node_lines(n, kids, n in server_cert_replaced, ctx)
    return lines


def _urn_type(urn: str) -> str:
    parts = urn.split("::")
    return parts[2].split("$")[-1] if len(parts) >= 4 else ""


def _removed_node_line(node: Change, kids: Sequence[Change], platform: str | None, ctx: _Ctx) -> str:
    n = node.name
    on = f" ({platform})" if platform else ""
    cache = ""
    for k in kids:
        if k.type == checks.REMOTE_COMMAND and "uninstall" in str(k.old.get("delete") or ""):
            cache = ("; its cache is deleted (ssh.removeStateOnDestroy)" if "--purge-state" in str(k.old["delete"])
                     else "; its cache stays on the host")
        elif k.type == checks.EBS_VOLUME:
            cache = "; its cache volume is deleted with it"
        elif k.type == checks.K8S_STATEFULSET:
            cache = "; its cache PVC is retained"
    others = [c.name for c in ctx.p.changes if c.type in checks.NODE_TYPES and c.op != "delete"
              and platform and _platform(c, ctx) == platform]
    if platform and others:
        left = f"builds for {platform} go to {', '.join(others)}"
    elif platform:
        left = f"no node may be left for {platform} (then its builds fail)"
    else:
        left = "builds routed to it fail"
    return f"node {n}{on} removed: {left}; CI must recreate its builder{cache}"


def _existing_node_lines(n: str, kids: Sequence[Change], new_cert: bool, ctx: _Ctx) -> list[str]:
    lines: list[str] = []
    restart: list[str] = []
    cut = "builds running on it are cut"
    volume = next((k for k in kids if k.type == checks.EBS_VOLUME), None)
    sts_updated = any(k.type == checks.K8S_STATEFULSET and k.op in ("update", "replace") for k in kids)
    for k in kids:
        said = True
        if k.type == checks.REMOTE_COMMAND and k.name.endswith("-buildkitd"):
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
        elif k.type == checks.EBS_VOLUME and k.op in ("replace", "delete"):
            lines.append(f"data volume of {n} {'replaced' if k.op == 'replace' else 'deleted'}: its cache is lost")
        elif k.type == checks.EBS_VOLUME and k.op == "update":
            size = (k.old.get("size"), k.new.get("size"))
            grow = f" grows from {size[0]:g} to {size[1]:g} GiB" if "size" in k.diffs and None not in size else ""
            lines.append(f"data volume of {n}{grow or ' changes'} in place ({', '.join(k.diffs)}): "
                         "no restart, the cache stays")
        elif k.type == checks.EC2_INSTANCE and k.op == "replace":
            kept = volume is None or volume.op not in ("replace", "delete")
            lines.append(f"instance of {n} replaced ({', '.join(k.replace_keys or k.diffs)})"
                         + (", cache volume kept: first build is cold-started" if kept else "")
                         + f"; the node is down until the new instance boots and {cut}")
        elif k.type == checks.EC2_INSTANCE and k.op == "update" and \
                set(k.diffs) & {"userDataBase64", "userData", "instanceType"}:
            if "userDataBase64" in k.diffs or "userData" in k.diffs:
                restart.append("its bootstrap payload changed: the instance stops and starts")
            if "instanceType" in k.diffs:
                restart.append(f"instance type {k.old.get('instanceType')} -> {k.new.get('instanceType')}: "
                               "the instance stops and starts")
            said = set(k.diffs) <= {"userDataBase64", "userData", "instanceType", "tags"}
        elif k.type in (checks.SSM_PARAMETER, "aws:ssm/association:Association") and k.op == "update":
            restart.append("new certificates: SSM runs `bkf-node.sh certs`")
        elif k.type == checks.K8S_STATEFULSET and k.op == "replace":
            lines.append(f"StatefulSet of {n} replaced ({', '.join(k.replace_keys or k.diffs)}): the pod restarts "
                         f"and {cut}; its cache PVC is retained")
        elif k.type == checks.K8S_STATEFULSET and k.op == "update":
            restart.append(_statefulset_reasons(k))
        elif k.type in (checks.K8S_CONFIG_MAP, "kubernetes:core/v1:Secret") and k.op == "update" and sts_updated:
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
        if k.type == checks.K8S_STATEFULSET:
            try:
                grace = checks.get(k.new, "spec", "template", "spec", "terminationGracePeriodSeconds")
                hooks = json.dumps(k.new).count("preStop")
            except checks.UnknownValue:
                return None
            if hooks and isinstance(grace, int | float):
                return int(grace)
    return None


def _ingress_lines(ctx: _Ctx) -> list[str]:
    lines = []
    node_gone_or_new = {c.urn for c in ctx.p.changes if c.type in checks.NODE_TYPES and c.op in ("create", "delete")}
    for c in ctx.changed():
        if c.parent in node_gone_or_new or c.urn in ctx.explained:
            continue
        sources = None
        if c.type == checks.SECURITY_GROUP:
            sources = (_sg_sources(c.old), _sg_sources(c.new))
        elif c.type == checks.K8S_NETWORK_POLICY:
            sources = (_np_sources(c.old), _np_sources(c.new))
        elif c.type in (checks.SECURITY_GROUP_RULE, checks.SG_INGRESS_RULE):
            sources = ([], [])
        elif c.type == checks.K8S_SERVICE and "spec" in c.diffs:
            a = (c.old.get("spec") or {}).get("loadBalancerSourceRanges")
            b = (c.new.get("spec") or {}).get("loadBalancerSourceRanges")
            if a == b:
                continue
            sources = (list(a or []), list(b or []))
        if sources is None:
            continue
        change = (f": who may reach the build port: {', '.join(sources[0]) or 'nobody'} -> "
                  f"{', '.join(sources[1]) or 'nobody'}") if sources != ([], []) and sources[0] != sources[1] else ""
        lines.append(f"ingress changed ({c.short_type} {c.name}, {c.op}){change}")
        ctx.explained.add(c.urn)
    return lines


def _sg_sources(inputs: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for r in inputs.get("ingress") or []:
        if isinstance(r, Mapping):
            out += [str(x) for x in (r.get("cidrBlocks") or []) + (r.get("ipv6CidrBlocks") or [])]
    return out


def _np_sources(inputs: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for r in ((inputs.get("spec") or {}).get("ingress") or []):
        for peer in (r.get("from") or []) if isinstance(r, Mapping) else []:
            cidr = (peer.get("ipBlock") or {}).get("cidr") if isinstance(peer, Mapping) else None
            if cidr:
                out.append(str(cidr))
    return out


def _builder_lines(ctx: _Ctx) -> list[str]:
    lines = []
    for c in ctx.of_type(checks.LOCAL_COMMAND):
        if "buildkit-farm:index:Builder" not in c.parent_types:
            continue
        m = re.search(r"buildx builder '([^']+)'", str(c.inputs().get("create") or ""))
        name = m.group(1) if m else c.name
        old_eps = _endpoints(c.old)
        new_eps = _endpoints(c.new)
        if c.op == "create":
            lines.append(f"buildx builder {name} is created on the machine that runs `pulumi up`")
        elif c.op == "delete":
            lines.append(f"buildx builder {name} is removed from the machine that runs `pulumi up`")
        else:
            why = []
            if old_eps != new_eps:
                why.append("its nodes change")
            if any(d in c.diffs for d in ("environment",)) or (c.old.get("triggers") or [None])[1:] != \
                    (c.new.get("triggers") or [None])[1:]:
                why.append("its certificates change")
            what = " and ".join(why) or ", ".join(c.diffs)
            ci = "; CI builders made from buildxCreateScript or setupBuildxAction must be recreated too" \
                if old_eps != new_eps else ""
            lines.append(f"buildx builder {name} is recreated on the machine that runs `pulumi up` ({what}){ci}")
        ctx.explained.add(c.urn)
    return lines


def _endpoints(inputs: Mapping[str, Any]) -> list[str]:
    triggers = inputs.get("triggers") or []
    first = triggers[0] if isinstance(triggers, list) and triggers else None
    return [str(x) for x in first] if isinstance(first, list) else []


def consequences(p: Preview) -> tuple[list[str], list[str]]:
    """(consequence lines, lines for changes no rule explains)."""
    ctx = _Ctx(p)
    lines = [*_ca_lines(ctx), *_client_lines(ctx), *_node_lines(ctx), *_ingress_lines(ctx), *_builder_lines(ctx)]
    # components and the stack have no behaviour of their own; providers are plumbing
    for c in ctx.changed():
        if c.urn in ctx.explained or c.type.startswith(("pulumi:", "buildkit-farm:")):
            continue
        if c.type in PKI_LEAVES and \
                _leaf(c, "server") and any(ln.startswith(f"node {_leaf(c, 'server')} ") for ln in lines):
            ctx.explained.add(c.urn)  # a server cert that reaches its node: the node line says it
    other = [f"`{c.name}` ({c.short_type}): {c.op}" + (f" ({', '.join(c.diffs)})" if c.diffs else "")
             for c in ctx.changed()
             if c.urn not in ctx.explained and not c.type.startswith(("pulumi:", "buildkit-farm:"))]
    return lines, other


# ---------------------------------------------------------------------------------------------
# Markdown


def counts_line(counts: Mapping[str, int]) -> str:
    parts = [f"{counts[op]} {words}" for op, (_, words) in OPS.items() if counts.get(op)]
    parts += [f"{v} {k}" for k, v in counts.items() if k not in OPS and v]
    return ", ".join(parts) or "no resources"


def render(p: Preview, title: str = "Infrastructure preview") -> str:
    lines = [f"### {title}", ""]
    if p.failed:
        lines += ["**The preview failed** (see the policy findings below and the job log).", ""]
    lines += [f"**{counts_line(p.counts)}**", "", "| operation | resources |", "|---|---:|"]
    lines += [f"| `{sym}` {op} | {p.counts[op]} |" for op, (sym, _) in OPS.items() if p.counts.get(op)]
    lines += [f"| {op} | {n} |" for op, n in p.counts.items() if op not in OPS and n]
    found, other = consequences(p)
    lines.append("")
    if found:
        lines += ["**What it means**", "", *(f"- {line}" for line in found), ""]
    elif not other:
        lines += ["Nothing changes for the people who build through the farm.", ""]
    if other:
        lines += ["**Other changes**", "", *(f"- {line}" for line in other), ""]
    if p.policies:
        lines += ["**Policies**", ""]
        order = {"mandatory": 0, "remediate": 1, "advisory": 2}
        for f in sorted(p.policies, key=lambda f: (order.get(f.level, 3), f.policy, f.message)):
            mark = "❌" if f.level == "mandatory" else "⚠️"
            where = f" ({f.urn.rsplit('::', 1)[-1]})" if f.urn else ""
            lines.append(f"- {mark} {f.level} `{f.policy}`{where}: {f.message}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    text = Path(args[0]).read_text() if args and args[0] != "-" else sys.stdin.read()
    try:
        preview = parse(text)
    except (ValueError, json.JSONDecodeError) as e:
        print(f"review.summary: cannot read the preview: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(render(preview))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
