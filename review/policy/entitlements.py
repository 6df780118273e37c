"""Mandatory: buildkitd allows no insecure entitlements (buildkitd.toml or --allow-insecure-entitlement)."""

from __future__ import annotations

from review.policy.payload import buildkitd_lines, flag_values, parse_toml, payload_toml, user_data_payload
from review.policy.pods import container_argv, containers, pod_spec
from review.policy.resources import (
    EC2_INSTANCE,
    EC2_LAUNCH_TEMPLATE,
    K8S_CONFIG_MAP,
    K8S_WORKLOADS,
    LOCAL_COMMAND,
    REMOTE_COMMAND,
    Resource,
    Settings,
    get,
)


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
