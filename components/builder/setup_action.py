"""docker/setup-buildx-action's inputs for the farm (a stack output), pure.

The create script (scripts.py) is the one way the builder is made; this is the other form CI can
take the nodes in, for workflows that use the upstream action with the remote driver.
"""

from __future__ import annotations

from collections.abc import Sequence

import yaml

from components.builder.scripts import BuilderNode


def setup_buildx_action(nodes: Sequence[BuilderNode]) -> dict[str, object]:
    """Inputs for docker/setup-buildx-action with the remote driver.

    The first node is `endpoint`; the rest go to `append`. PEM contents go in the
    env vars BUILDER_NODE_<i>_AUTH_TLS_{CACERT,CERT,KEY} (i follows that order);
    the server name travels in driver-opts, as the action has no env var for it.
    """
    if not nodes:
        raise ValueError("no nodes")
    first, rest = nodes[0], nodes[1:]
    append: list[dict[str, object]] = [{"name": n.name, "endpoint": n.endpoint, "platforms": n.platform,
               "driver-opts": [f"servername={n.server_name}"]} for n in rest]
    env: dict[str, str] = {}
    for i in range(len(nodes)):
        # env var name -> the stack output whose value it takes
        env[f"BUILDER_NODE_{i}_AUTH_TLS_CACERT"] = "caCert"
        env[f"BUILDER_NODE_{i}_AUTH_TLS_CERT"] = "clientCert"
        env[f"BUILDER_NODE_{i}_AUTH_TLS_KEY"] = "clientKey"
    return {
        "driver": "remote",
        "endpoint": first.endpoint,
        "platforms": first.platform,
        "driver-opts": f"servername={first.server_name}",
        "append": _yaml_list(append),
        "env": env,
    }


class _ActionYaml(yaml.SafeDumper):
    """The `append` input's layout: lists indented under their key, keys plain, values double-quoted
    (the bytes the stack output has always had, so an existing stack previews unchanged)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def choose_scalar_style(self) -> str:
        return "" if self.simple_key_context else '"'


def _yaml_list(items: Sequence[dict[str, object]]) -> str:
    """The action's `append` input (strings and string lists) as YAML."""
    if not items:
        return ""
    return yaml.dump(list(items), Dumper=_ActionYaml, sort_keys=False, width=2**31, default_flow_style=False)
