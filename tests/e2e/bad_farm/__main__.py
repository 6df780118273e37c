"""A deliberately bad farm: what the policy pack must stop (only ever previewed).

The same resource shapes as the real program's SSH backend, but the node serves
plaintext TCP with an insecure entitlement, and a private key is a plain stack
output. `pulumi preview --policy-pack review/policy/run` of this project must
fail with the pack's mandatory violations (tests/e2e/test_review.py).
"""

import pulumi
import pulumi_command as command

PLAINTEXT_TOML = """insecure-entitlements = ["security.insecure"]

[grpc]
  address = ["tcp://0.0.0.0:1234"]
"""
MARKER = "BKF_EOF_0123456789ab"
PAYLOAD = (
    "#!/bin/bash\nset -euo pipefail\nmkdir -p /etc/buildkit\n"
    f"cat > '/etc/buildkit/buildkitd.toml.new' <<'{MARKER}'\n{PLAINTEXT_TOML.rstrip()}\n{MARKER}\n"
    "mv -f /etc/buildkit/buildkitd.toml.new /etc/buildkit/buildkitd.toml\n"
    "exec buildkitd --config /etc/buildkit/buildkitd.toml --addr tcp://0.0.0.0:1234\n"
)
# Not a key: the policy only looks for the PEM header (built here so no scanner mistakes this file).
FAKE_KEY = "-----BEGIN " + "EC PRIVATE KEY-----\nbm90IGEga2V5\n-----END " + "EC PRIVATE KEY-----\n"


class SshNode(pulumi.ComponentResource):
    def __init__(self, name: str, host: str) -> None:
        super().__init__("buildkit-farm:index:SshNode", name)
        command.remote.Command(
            f"{name}-buildkitd", create=PAYLOAD,
            # never dialled: the stack is only previewed
            connection=command.remote.ConnectionArgs(host=host, user="root"),
            opts=pulumi.ResourceOptions(parent=self))


SshNode("plain-1", "192.0.2.10")
pulumi.export("clientKey", FAKE_KEY)
