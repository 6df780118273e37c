"""Another Pulumi program that embeds a build farm (docs/embedding.md).

The farm's config is built in Python here instead of read from `buildkit-farm:*`
stack keys; the same models validate it, with the same errors.

Its venv gets the farm as a user's would: `pip install <a checkout of buildkit-farm>` (or
`pip install "buildkit-farm @ git+<its repository>"`), which also installs the `bkf` command
(tests/unit/test_embedding.py does this in a fresh venv).
"""

from __future__ import annotations

import pulumi

from components import BuildkitFarm, FarmArgs, HostInputs, parse_config

config = pulumi.Config()
farm_config = parse_config({
    "backend": "ssh",
    "nodes": [
        {"name": "amd64-1", "platform": "linux/amd64", "host": "build-amd64.internal.example"},
        {"name": "arm64-1", "platform": "linux/arm64", "host": "build-arm64.internal.example"},
    ],
    "ssh": {"privateKeyPath": "unused: the key comes from this program's secret config"},
    "pki": {"clients": ["ci", "release"]},
    # CI creates its builder itself from the exported script
    "builder": {"enabled": False, "name": "acme-ci"},
})
farm = BuildkitFarm("ci-farm", FarmArgs(
    config=farm_config,
    inputs=HostInputs(stack=pulumi.get_stack(), ssh_private_key=config.require_secret("sshPrivateKey")),
    organization="acme ci"))

pulumi.export("endpoints", farm.nodes.apply(lambda ns: [n.endpoint for n in ns]))
pulumi.export("caCert", farm.ca_cert)
pulumi.export("releaseClientCert", farm.client_certs["release"])
pulumi.export("buildxCreateScript", farm.create_script)
