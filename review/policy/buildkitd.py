"""Mandatory: buildkitd's own configuration, wherever a node carries it.

Two policies read the same places (the SSH command's payload, EC2 user data, the ConfigMap's
buildkitd.toml, the buildkitd containers' args), so they live together:

* nodes-serve-mtls-only: every TCP listener requires client certificates, there is no debug
  listener on the network (a unix socket is: metrics.port's proxy reads it), and the node gets
  its TLS material (mounted from a Secret on Kubernetes);
* no-insecure-entitlements: neither buildkitd.toml nor --allow-insecure-entitlement allows one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from review.policy.payload import (
    INSTALL_RE,
    buildkitd_lines,
    flag_values,
    parse_toml,
    payload_env,
    payload_toml,
    user_data_payload,
)
from review.policy.pods import container_argv, containers, is_buildkitd, pod_spec, secret_mounted
from review.policy.resources import (
    AWS_NODE,
    EC2_INSTANCE,
    EC2_LAUNCH_TEMPLATE,
    K8S_CONFIG_MAP,
    K8S_WORKLOADS,
    LOCAL_COMMAND,
    REMOTE_COMMAND,
    UNKNOWN,
    Resource,
    Settings,
    get,
    reveal,
)

# ---------------------------------------------------------------------------------------------
# nodes-serve-mtls-only


def toml_tls_problems(text: str) -> list[str]:
    """mTLS on every TCP listener, and no unauthenticated debug listener."""
    doc, err = parse_toml(text)
    if doc is None:
        return [str(err)]
    grpc: dict[str, Any] = doc["grpc"] if isinstance(doc.get("grpc"), dict) else {}
    addrs = grpc.get("address", [])
    addrs = [addrs] if isinstance(addrs, str) else [str(a) for a in addrs or []]
    tcp = [a for a in addrs if a.startswith("tcp://")]
    tls: dict[str, Any] = grpc["tls"] if isinstance(grpc.get("tls"), dict) else {}
    missing = [k for k in ("cert", "key", "ca") if not tls.get(k)]
    problems = []
    if tcp and missing:
        why = " (without a CA any client may connect)" if missing == ["ca"] else ""
        problems.append(f"buildkitd.toml serves {', '.join(tcp)} without mutual TLS: "
                        f"[grpc.tls] {', '.join(missing)} missing{why}")
    # a unix socket (metrics.port: the node's mTLS proxy reads /metrics from it) is not a network listener
    if grpc.get("debugAddress") and not str(grpc["debugAddress"]).startswith("unix://"):
        problems.append(f"buildkitd.toml sets debugAddress {grpc['debugAddress']!r}, which serves pprof and "
                        "/metrics without authentication")
    return problems


def args_tls_problems(args: Sequence[str]) -> list[str]:
    tcp = [a for a in flag_values(args, "--addr") if a.startswith("tcp://")]
    missing = [f for f in ("--tlscacert", "--tlscert", "--tlskey") if not flag_values(args, f)]
    problems = []
    if tcp and missing:
        problems.append(f"buildkitd serves {', '.join(tcp)} without mutual TLS: {', '.join(missing)} missing")
    if [a for a in flag_values(args, "--debugaddr") if not a.startswith("unix://")]:
        problems.append("buildkitd runs with --debugaddr (pprof and /metrics without authentication)")
    return problems


def _payload_problems(label: str, payload: str, stdin: Any, has_stdin: bool) -> list[str]:
    problems = []
    toml = payload_toml(payload)
    if toml is not None:
        problems += [f"{label}: {p}" for p in toml_tls_problems(toml)]
    elif INSTALL_RE.search(payload):
        problems.append(f"{label}: installs buildkitd but carries no buildkitd.toml, so mTLS cannot be verified")
    for argv in buildkitd_lines(payload):
        problems += [f"{label}: {p}" for p in args_tls_problems(argv)]
    if toml is not None or INSTALL_RE.search(payload):
        env = payload_env(payload)
        source = env.get("BKF_CERT_SOURCE", "")
        if source == "stdin":
            if not has_stdin:
                problems.append(f"{label}: certificates should arrive on stdin, but the command has no stdin")
            elif stdin is not UNKNOWN:
                bundle = str(reveal(stdin) or "")
                lacking = [f for f in ("ca.pem", "cert.pem", "key.pem") if f"### {f}" not in bundle]
                if lacking:
                    problems.append(f"{label}: the certificate bundle on stdin lacks {', '.join(lacking)}")
        elif source == "ssm" and not env.get("BKF_SSM_PREFIX"):
            problems.append(f"{label}: certificates come from SSM but BKF_SSM_PREFIX is empty")
        elif source not in ("stdin", "ssm", "files"):
            problems.append(f"{label}: no certificate source (BKF_CERT_SOURCE={source!r})")
    return problems


def nodes_serve_mtls(r: Resource, s: Settings) -> list[str]:
    """Every buildkitd listener on TCP requires client certificates, and the node gets its TLS material."""
    if r.type == REMOTE_COMMAND:
        payload = get(r.props, "create")
        if payload is None:
            return []
        stdin = r.props.get("stdin")
        return _payload_problems(f"command {r.name}", str(payload), stdin,
                                 stdin is not None and stdin != "")
    if r.type in (EC2_INSTANCE, EC2_LAUNCH_TEMPLATE):
        payload = user_data_payload(r)
        if payload is None:
            return [f"instance {r.name} has no user data: no buildkitd configuration to verify"] \
                if r.under(AWS_NODE) else []
        if payload == "":
            return [f"instance {r.name}: user data is not valid base64 (gzip): cannot verify mTLS"]
        return _payload_problems(f"instance {r.name} user data", payload, None, False)
    if r.type == K8S_CONFIG_MAP:
        toml = get(r.props, "data", "buildkitd.toml")
        return [f"ConfigMap {r.name}: {p}" for p in toml_tls_problems(str(toml))] if toml is not None else []
    if r.type in K8S_WORKLOADS:
        spec = pod_spec(r)
        if spec is None:
            return []
        problems = []
        for c in containers(spec):
            if not is_buildkitd(c):
                continue
            argv = container_argv(c)
            label = f"{r.name} container {get(c, 'name')}"
            problems += [f"{label}: {p}" for p in args_tls_problems(argv)]
            for flag in ("--tlscacert", "--tlscert", "--tlskey"):
                for path in flag_values(argv, flag):
                    if not secret_mounted(spec, c, path):
                        problems.append(f"{label}: {flag} {path} is not mounted from a Secret")
        return problems
    return []


# ---------------------------------------------------------------------------------------------
# no-insecure-entitlements


def toml_entitlements(text: str) -> list[str]:
    doc, _ = parse_toml(text)
    if doc is None:
        return []
    ents = doc.get("insecure-entitlements") or []
    return [str(e) for e in ([ents] if isinstance(ents, str) else ents)]


def no_insecure_entitlements(r: Resource, s: Settings) -> list[str]:
    tomls: list[tuple[str, str]] = []
    argvs: list[tuple[str, list[str]]] = []
    if r.type == REMOTE_COMMAND:
        payload = get(r.props, "create")
        if payload is not None:
            toml = payload_toml(str(payload))
            if toml is not None:
                tomls.append((f"command {r.name}", toml))
            argvs += [(f"command {r.name}", a) for a in buildkitd_lines(str(payload))]
    elif r.type in (EC2_INSTANCE, EC2_LAUNCH_TEMPLATE):
        payload = user_data_payload(r)
        if payload:
            toml = payload_toml(payload)
            if toml is not None:
                tomls.append((f"instance {r.name} user data", toml))
            argvs += [(f"instance {r.name} user data", a) for a in buildkitd_lines(payload)]
    elif r.type == K8S_CONFIG_MAP:
        toml = get(r.props, "data", "buildkitd.toml")
        if toml is not None:
            tomls.append((f"ConfigMap {r.name}", str(toml)))
    elif r.type in K8S_WORKLOADS:
        spec = pod_spec(r)
        for c in containers(spec) if spec else []:
            argvs.append((f"{r.name} container {get(c, 'name')}", container_argv(c)))
    elif r.type == LOCAL_COMMAND:
        script = str(get(r.props, "create") or "")
        if "--allow-insecure-entitlement" in script:
            return [f"command {r.name} passes --allow-insecure-entitlement"]
    problems = []
    for label, toml in tomls:
        ents = toml_entitlements(toml)
        if ents:
            problems.append(f"{label}: buildkitd.toml allows insecure entitlements {ents}")
    for label, argv in argvs:
        ents = flag_values(argv, "--allow-insecure-entitlement")
        if ents:
            problems.append(f"{label}: buildkitd runs with --allow-insecure-entitlement {', '.join(ents)}")
    return problems
