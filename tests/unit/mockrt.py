"""Run components or the whole program under Pulumi mocks and collect what they registered."""

from __future__ import annotations

import asyncio
import hashlib
import json
import runpy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pulumi
import yaml
from pulumi import _types

from components.contracts import wire

ROOT = Path(__file__).resolve().parents[2]
#: the farm component's name in __main__.py (its children keep bare names: adopt_root_resources)
FARM = "bkf"


def short(name: str) -> str:
    """A resource name as the tests call it (a prefix only embedded farms give their children)."""
    return name.removeprefix(f"{FARM}-")


def _fake_ip(name: str) -> str:
    h = hashlib.sha256(name.encode()).digest()
    return f"198.51.100.{h[0] % 250 + 1}"


def fake_pem(kind: str, name: str) -> str:
    return f"-----BEGIN {kind}-----\nMOCK:{name}\n-----END {kind}-----\n"


class FarmMocks(pulumi.runtime.Mocks):
    """Plausible provider outputs, derived from the inputs so tests see real wiring."""

    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []
        self.calls: list[pulumi.runtime.MockCallArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        state = dict(args.inputs)
        t, n = args.typ, short(args.name)
        if t == "tls:index/privateKey:PrivateKey":
            kind = "EC PRIVATE KEY" if args.inputs.get("algorithm") == "ECDSA" else "RSA PRIVATE KEY"
            state.update(private_key_pem=fake_pem(kind, n), public_key_pem=fake_pem("PUBLIC KEY", n),
                         private_key_pem_pkcs8=fake_pem("PRIVATE KEY", n), private_key_openssh="")
        elif t == "tls:index/selfSignedCert:SelfSignedCert":
            state.update(cert_pem=fake_pem("CERTIFICATE", n), validity_end_time="2031-01-01T00:00:00Z")
        elif t == "tls:index/certRequest:CertRequest":
            state.update(cert_request_pem=fake_pem("CERTIFICATE REQUEST", n))
        elif t == "tls:index/locallySignedCert:LocallySignedCert":
            # clients expire a day later than servers, so "earliest expiry" is observable
            end = "2027-02-02T00:00:00Z" if "client" in n else "2027-02-01T00:00:00Z"
            state.update(cert_pem=fake_pem("CERTIFICATE", n), validity_end_time=end)
        elif t == "aws:ec2/eip:Eip":
            state.update(public_ip=_fake_ip(n), allocation_id=f"eipalloc-{n}")
        elif t == "aws:route53/record:Record":
            state.update(fqdn=args.inputs["name"])
        elif t == "aws:ecr/repository:Repository":
            state.update(repository_url=f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{args.inputs['name']}",
                         arn=f"arn:aws:ecr:eu-west-1:123456789012:repository/{args.inputs['name']}")
        elif t == "aws:ebs/volume:Volume":
            return f"vol-0{hashlib.sha256(n.encode()).hexdigest()[:16]}", state
        elif t.startswith("aws:"):
            state.setdefault("name", n)
            state.setdefault("arn", f"arn:aws:mock:::{n}")
        if t.startswith("command:"):
            state.update(stdout="", stderr="")
        elif t == "kubernetes:core/v1:Service":
            state.setdefault("status", {"loadBalancer": {"ingress": [{"ip": _fake_ip(n)}]}})
        return f"{n}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        self.calls.append(args)
        if args.token == "aws:ec2/getAmi:getAmi":
            arch = next(f["values"][0] for f in args.args["filters"] if f["name"] == "architecture")
            return {"id": f"ami-0{'a' if arch == 'arm64' else 'b'}{'0' * 15}", "architecture": arch}, []
        return {}, []


@dataclass(frozen=True)
class Registered:
    """A resource as the program constructed it: raw props (Outputs kept) and options."""

    typ: str
    props: dict[str, Any]
    opts: pulumi.ResourceOptions


@dataclass
class Run:
    mocks: FarmMocks
    registered: dict[str, Registered] = field(default_factory=dict)
    exports: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    secret: dict[str, bool] = field(default_factory=dict)

    def of_type(self, typ: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [r for r in self.mocks.resources if r.typ == typ]

    def named(self, name: str) -> pulumi.runtime.MockResourceArgs:
        """The resource the farm named "<FARM>-<name>"."""
        found = [r for r in self.mocks.resources if short(r.name) == name]
        assert len(found) == 1, f"{name}: {[r.name for r in self.mocks.resources]}"
        return found[0]

    def names(self) -> set[str]:
        return {short(r.name) for r in self.mocks.resources}


def stack_config(path: Path) -> dict[str, str]:
    """A Pulumi.<stack>.yaml's config as the engine hands it to the program."""
    raw = yaml.safe_load(path.read_text())["config"]
    out = {}
    for k, v in raw.items():
        out[k] = v if isinstance(v, str) else json.dumps(v)
    return out


def with_section(config: dict[str, str], section: str, **changes: Any) -> dict[str, str]:
    """A copy of a stack config with keys merged into one `buildkit-farm:<section>` object."""
    cfg = dict(config)
    merged = json.loads(cfg.get(f"buildkit-farm:{section}", "{}"))
    merged.update(changes)
    cfg[f"buildkit-farm:{section}"] = json.dumps(merged)
    return cfg


async def _resolve(value: Any) -> tuple[Any, bool]:
    out = pulumi.Output.from_input(value)
    return await out.future(), bool(await out.is_secret())


def run(program: Callable[[], None], config: dict[str, str] | None = None, stack: str = "dev",
        mocks: FarmMocks | None = None) -> Run:
    mocks = mocks or FarmMocks()
    pulumi.runtime.set_mocks(mocks, project="buildkit-farm", stack=stack, preview=False)
    pulumi.runtime.set_all_config(dict(config or {}))
    result = Run(mocks)
    original_init = pulumi.Resource.__init__

    def recording_init(self: pulumi.Resource, t: str, name: str, custom: bool = False,
                       props: Any = None, opts: pulumi.ResourceOptions | None = None, *a: Any, **kw: Any) -> None:
        raw = props if isinstance(props, dict) or props is None else _types.input_type_to_dict(props)
        result.registered[short(name)] = Registered(t, dict(raw or {}), opts or pulumi.ResourceOptions())
        original_init(self, t, name, custom, props, opts, *a, **kw)

    with mock.patch.object(pulumi, "export", lambda k, v: result.exports.__setitem__(k, v)), \
            mock.patch.object(pulumi.Resource, "__init__", recording_init):
        program()
    loop = asyncio.get_event_loop()
    for k, v in result.exports.items():
        result.values[k], result.secret[k] = loop.run_until_complete(_resolve(v))
    loop.run_until_complete(pulumi.runtime.stack.wait_for_rpcs())
    return result


def resolve(value: Any) -> Any:
    return asyncio.get_event_loop().run_until_complete(_resolve(value))[0]


def is_secret(value: Any) -> bool:
    return asyncio.get_event_loop().run_until_complete(_resolve(value))[1]


def run_main(config: dict[str, str], stack: str = "dev", mocks: FarmMocks | None = None) -> Run:
    def program() -> None:
        runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
    return run(program, config, stack, mocks)


#: How the mock monitor hands over a secret input: {SIG_KEY: SECRET_SIG, "value": ...} (the engine's wire form).
SIG_KEY, SECRET_SIG = wire.SIG_KEY, wire.SECRET_SIG


def secret_value(value: Any) -> Any:
    """The plain value of a secret input; fails if the input is not secret."""
    assert isinstance(value, dict) and value.get(SIG_KEY) == SECRET_SIG, f"not a secret: {value!r}"
    return value["value"]


def plaintext_strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every (path, string) in an input tree that is NOT inside a secret."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return []
        return [x for k, v in value.items() for x in plaintext_strings(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in plaintext_strings(v, f"{path}[{i}]")]
    if isinstance(value, str):
        return [(path, value)]
    return []


def plain(value: Any) -> Any:
    """Mock inputs as the API would get them: secrets unwrapped, 2.0 back to 2."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return plain(value["value"])
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
