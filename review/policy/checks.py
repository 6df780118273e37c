"""buildkit-farm's policies as pure functions over resource properties: the catalogue.

No Pulumi and no pulumi-policy here or in the modules it lists: ``__main__.py`` (the pack)
wires ``POLICIES`` into pulumi-policy, and tests/unit/test_policy.py calls the checks directly
with properties in the engine's wire form, which ``Resource.from_wire`` decodes
(resources.py says how).

A resource check returns messages (one per violation); a stack check returns
(message, urn) pairs. A check that needs a value the preview does not know yet
raises ``UnknownValue``: the pack reports it the way pulumi-policy reports
unknowns (an advisory "can't run during preview"), and ``pulumi up`` runs the
check again with every input known.

Where things are:

* resources.py: the Resource model, values (secrets, unknowns, ``get``), type tokens, Settings;
* payload.py: a node's bootstrap payload, EC2 user data, buildkitd.toml, node.env, buildkitd argv;
* pods.py: a Kubernetes workload's pod spec, containers and mounts;
* the checks by concern: buildkitd.py (mTLS only, no insecure entitlements), ec2.py, ingress.py,
  images.py, private_keys.py (mandatory) and advisory.py;
* public_ranges.py: how much public address space a set of CIDRs admits (ingress.py, and the
  config validator's open-ingress check).

This module re-exports what the pack and the tests use (``__all__``), so ``checks`` stays the
one name to import.
"""

from __future__ import annotations

from dataclasses import dataclass

from review.policy.advisory import (
    cache_volume_protected,
    cert_validity_at_most_a_year,
    more_than_one_node_per_platform,
)
from review.policy.buildkitd import no_insecure_entitlements, nodes_serve_mtls
from review.policy.ec2 import ec2_imdsv2_and_encryption
from review.policy.images import image_pinned_by_digest
from review.policy.ingress import ingress_build_port_only
from review.policy.private_keys import (
    KEY_OUTPUTS,
    private_keys_only_in_secret_inputs,
    private_keys_only_in_secret_outputs,
)
from review.policy.resources import (
    AWS_NODE,
    EBS_VOLUME,
    EC2_INSTANCE,
    EC2_LAUNCH_TEMPLATE,
    K8S_CONFIG_MAP,
    K8S_FARM_NAMESPACE,
    K8S_NAMESPACE,
    K8S_NETWORK_POLICY,
    K8S_NODE,
    K8S_SERVICE,
    K8S_STATEFULSET,
    LOCAL_COMMAND,
    REMOTE_COMMAND,
    SECRET_SIG,
    SECURITY_GROUP,
    SECURITY_GROUP_RULE,
    SG_INGRESS_RULE,
    SIG_KEY,
    SSH_NODE,
    SSM_PARAMETER,
    STACK,
    TLS_LOCALLY_SIGNED,
    TLS_PRIVATE_KEY,
    TLS_SELF_SIGNED,
    UNKNOWN,
    Resource,
    ResourceCheck,
    Secret,
    Settings,
    StackCheck,
    UnknownValue,
    decode,
    get,
    reveal,
)

__all__ = [
    "AWS_NODE", "EBS_VOLUME", "EC2_INSTANCE", "EC2_LAUNCH_TEMPLATE", "K8S_CONFIG_MAP", "K8S_FARM_NAMESPACE",
    "K8S_NAMESPACE", "K8S_NETWORK_POLICY", "K8S_NODE", "K8S_SERVICE", "K8S_STATEFULSET", "KEY_OUTPUTS",
    "LOCAL_COMMAND", "POLICIES", "REMOTE_COMMAND", "SECRET_SIG", "SECURITY_GROUP", "SECURITY_GROUP_RULE",
    "SG_INGRESS_RULE", "SIG_KEY", "SSH_NODE", "SSM_PARAMETER", "STACK", "TLS_LOCALLY_SIGNED", "TLS_PRIVATE_KEY",
    "TLS_SELF_SIGNED", "UNKNOWN", "PolicySpec", "Resource", "ResourceCheck", "Secret", "Settings", "StackCheck",
    "UnknownValue", "cache_volume_protected", "cert_validity_at_most_a_year", "decode", "ec2_imdsv2_and_encryption",
    "get", "image_pinned_by_digest", "ingress_build_port_only", "more_than_one_node_per_platform",
    "no_insecure_entitlements", "nodes_serve_mtls", "private_keys_only_in_secret_inputs",
    "private_keys_only_in_secret_outputs", "reveal",
]


@dataclass(frozen=True)
class PolicySpec:
    name: str
    description: str
    mandatory: bool
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None


POLICIES: tuple[PolicySpec, ...] = (
    PolicySpec("nodes-serve-mtls-only",
               "Every buildkitd serves TCP only with mutual TLS (cert, key and CA) and gets its TLS material; "
               "no plaintext or debug listener.", True, resource_check=nodes_serve_mtls),
    PolicySpec("ec2-imdsv2-and-encrypted-volumes",
               "EC2 nodes require IMDSv2 with hop limit 1, and every EBS volume is encrypted.", True,
               resource_check=ec2_imdsv2_and_encryption),
    PolicySpec("ingress-build-port-only",
               "Ingress only on the build port, and never from everywhere without allowOpenIngress.", True,
               resource_check=ingress_build_port_only),
    PolicySpec("kubernetes-image-pinned-by-digest",
               "Kubernetes workloads run images pinned by digest.", True, resource_check=image_pinned_by_digest),
    PolicySpec("no-insecure-entitlements",
               "buildkitd allows no insecure entitlements (security.insecure, network.host, device).", True,
               resource_check=no_insecure_entitlements),
    PolicySpec("private-keys-only-in-secret-inputs",
               "Private keys reach resources only as secrets (and never through a ConfigMap or a plain SSM "
               "parameter).", True, resource_check=private_keys_only_in_secret_inputs),
    PolicySpec("private-keys-only-in-secret-outputs",
               "No output (stack outputs included) holds a private key in plain text.", True,
               stack_check=private_keys_only_in_secret_outputs),
    PolicySpec("cache-volume-protected",
               "The build cache survives `pulumi destroy` and replacements.", False,
               resource_check=cache_volume_protected),
    PolicySpec("cert-validity-at-most-a-year",
               "Leaf certificates are valid for at most a year.", False,
               resource_check=cert_validity_at_most_a_year),
    PolicySpec("more-than-one-node-per-platform",
               "Each platform has more than one node, so one node's restart does not stop its builds.", False,
               stack_check=more_than_one_node_per_platform),
)
