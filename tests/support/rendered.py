"""What the program renders for a stack, with real certificates: the whole program (__main__.py)
runs under Pulumi mocks, and every tls resource is created by the tls plugin this toolchain
installs (toolchain/providers/bkf_providers/tls.py) from the very inputs the program gave it.

So the Kubernetes objects are exactly the ones the program registers (built by
components/backends/kubernetes/{manifests,pod}.py through the component), and the certs are
real (ECDSA keys, SANs, key usages as the program asks), which a real cluster and real clients
can use. The kubernetes provider itself is not involved here (tests/k8s/test_pulumi_up.py runs the
real one through `pulumi up`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml

from bkf_providers import tls
from tests.unit import mockrt

ROOT = Path(__file__).resolve().parents[2]
_TLS = {r.token: r for r in tls.RESOURCES}


#: a stand-in for a stack's state: (type, name, inputs) -> (id, outputs) of a created tls resource
PkiState = dict[tuple[str, str, str], tuple[str, dict[str, Any]]]


class RealPkiMocks(mockrt.FarmMocks):
    """FarmMocks, except that tls resources are really created (keys generated, certs signed).

    With a shared ``state``, a later render with the same tls inputs gets the same keys and certs,
    as a `pulumi up` after a config change that does not touch the PKI would."""

    def __init__(self, state: PkiState | None = None) -> None:
        super().__init__()
        self.state = state if state is not None else {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        res = _TLS.get(args.typ)
        if res is None:
            return super().new_resource(args)
        self.resources.append(args)
        inputs = {**res.defaults, **mockrt.plain(args.inputs)}
        key = (args.typ, args.name, json.dumps(inputs, sort_keys=True))
        if key not in self.state:
            problems = res.validate(inputs)
            assert not problems, (args.name, problems)
            self.state[key] = res.create(tls.Context(), inputs, False)
        return self.state[key]


@dataclass(frozen=True)
class Rendered:
    #: every Kubernetes object the program registered, in registration order (dependencies first)
    objects: list[dict[str, Any]]
    #: the stack outputs (caCert, clientCert, clientKey, endpoints, buildxCreateScript, ...)
    outputs: dict[str, Any]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]


def stack_config(stack_yaml: dict[str, Any]) -> dict[str, str]:
    """A Pulumi.<stack>.yaml's `config:` mapping as the engine hands it to the program."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in stack_yaml["config"].items()}


def render(config: dict[str, str], stack: str = "k8s", pki: PkiState | None = None) -> Rendered:
    """Run __main__.py under mocks with real PKI (kept in ``pki`` if given); the objects and
    outputs it produced."""
    run = mockrt.run_main(config, stack=stack, mocks=RealPkiMocks(pki))
    objects = [mockrt.plain(r.inputs) for r in run.mocks.resources if r.typ.startswith("kubernetes:")]
    return Rendered(objects, dict(run.values))


def k8s_stack_yaml() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "Pulumi.k8s.yaml").read_text())
    return loaded
