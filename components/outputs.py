"""The stack outputs CI consumes: one name each, taken from the farm's typed attributes."""

from __future__ import annotations

import pulumi

from components.farm import BuildkitFarm


def export_outputs(farm: BuildkitFarm) -> None:
    """Export everything CI needs (docs/ci.md: "Outputs and how CI uses them")."""
    pulumi.export("builderName", farm.builder_name)
    pulumi.export("buildxCreateScript", farm.create_script)
    pulumi.export("backend", farm.backend)
    pulumi.export("platforms", farm.platforms)
    pulumi.export("nodes", farm.nodes.apply(lambda ns: [
        {"name": n.name, "platform": n.platform, "endpoint": n.endpoint, "serverName": n.server_name}
        for n in ns]))
    pulumi.export("endpoints", farm.nodes.apply(lambda ns: [n.endpoint for n in ns]))
    pulumi.export("caCert", farm.ca_cert)
    pulumi.export("clientCert", farm.client_cert)
    pulumi.export("clientKey", farm.client_key)
    pulumi.export("clientCerts", farm.client_certs)
    pulumi.export("clientKeys", farm.client_keys)
    pulumi.export("certExpiry", farm.cert_expiry)
    pulumi.export("setupBuildxAction", farm.setup_buildx_action)
    if farm.cache is not None:  # aws.cacheRepository only: other stacks' outputs stay as they were
        pulumi.export("cacheRef", farm.cache.repository_url)
        pulumi.export("cacheFlags", farm.cache.flags)
    if farm.ci_wake_policy is not None:
        # only with idleStop on AWS (other stacks keep the outputs they had)
        pulumi.export("ciWakePolicy", farm.ci_wake_policy)
    if farm.ci_wake_token is not None and farm.ci_wake_ca_cert is not None:
        # only with idleStop on kubernetes
        pulumi.export("ciWakeToken", farm.ci_wake_token)
        pulumi.export("ciWakeCaCert", farm.ci_wake_ca_cert)
