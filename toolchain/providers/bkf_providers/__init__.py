"""Substitute Pulumi resource-provider plugins for buildkit-farm (NOT the upstream providers).

The upstream plugins pulumi-resource-tls 5.5.1 and pulumi-resource-command 1.2.1
cannot be built here (their Go modules are refused by the module proxy), so these
Python plugins speak the same gRPC provider protocol and implement exactly the
resources and properties this program uses, with upstream's semantics:

- ``tls``: PrivateKey, SelfSignedCert, CertRequest, LocallySignedCert
- ``command``: local.Command, remote.Command, remote.CopyToRemote

Run one as a plugin: ``python -m bkf_providers tls|command [engine-address]``
(toolchain/install_providers.py generates the pulumi-resource-* launchers that do this).
"""

PROVIDERS = {"tls": "bkf_providers.tls", "command": "bkf_providers.command"}
