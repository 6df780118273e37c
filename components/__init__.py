"""buildkit-farm: a remote BuildKit build farm as Pulumi components.

Layers (docs/architecture.md): ``config`` (validated models) -> ``platforms`` ->
``node`` (address, buildkitd.toml, settings, payload, bkf-node.sh) -> ``pki`` ->
``backends`` (aws, ssh, kubernetes) -> ``builder`` -> ``farm`` -> ``outputs``.
"""
