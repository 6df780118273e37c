"""The Pulumi resource-provider gRPC protocol, shared by the substitute providers.

A provider is a ``Provider`` (the servicer) holding ``ResourceType`` objects keyed
by type token. The servicer decodes requests (``wire``), dispatches to the
resource type and encodes the answer. Started as a plugin (``serve``), it follows
the engine's contract: listen on 127.0.0.1:0, print the port on stdout, serve
until killed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, ClassVar

import grpc
from google.protobuf import empty_pb2
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc, plugin_pb2, provider_pb2, provider_pb2_grpc

from . import wire
from .wire import UNKNOWN, has_unknown, reveal

try:  # the SDK's limits (400 MB messages); fall back to gRPC's defaults
    from pulumi.runtime._grpc_settings import _GRPC_CHANNEL_OPTIONS as GRPC_OPTIONS
except ImportError:  # pragma: no cover
    GRPC_OPTIONS = []


class ProviderError(Exception):
    """A failed operation: its message is what the engine shows."""


@dataclass
class Diff:
    """Input properties that changed; those in ``replaces`` force a replacement."""

    changes: list[str] = field(default_factory=list)
    replaces: list[str] = field(default_factory=list)
    #: properties that are not inputs (e.g. readyForRenewal) in changes/replaces
    non_input: set[str] = field(default_factory=set)


def values_equal(a: Any, b: Any) -> bool:
    """Equality of two property values, ignoring secretness; an unknown equals nothing."""
    if has_unknown(a) or has_unknown(b):
        return False
    return bool(reveal(a) == reveal(b))


class Context:
    """What an operation may use besides its inputs: the engine log and cancellation."""

    def __init__(self, provider: Provider | None = None, urn: str = "") -> None:
        self._provider = provider
        self.urn = urn

    def log(self, message: str, severity: str = "info", ephemeral: bool = False) -> None:
        if self._provider is not None:
            self._provider.engine_log(message, severity, self.urn, ephemeral)

    def track(self, proc: subprocess.Popen[bytes]) -> None:
        if self._provider is not None:
            self._provider.track(proc)

    def untrack(self, proc: subprocess.Popen[bytes]) -> None:
        if self._provider is not None:
            self._provider.untrack(proc)


class ResourceType:
    """One resource type. Subclasses set the class attributes and override what differs.

    Property maps are dicts of decoded values (``wire``): inputs keep their Secret
    wrappers so that echoing them into the outputs keeps them secret.
    """

    token: ClassVar[str]
    #: every input property (camelCase wire names)
    inputs: ClassVar[tuple[str, ...]] = ()
    #: input properties whose change replaces the resource; others update it in place
    replace_on: ClassVar[frozenset[str]] = frozenset()
    #: defaults Check fills in for absent inputs
    defaults: ClassVar[Mapping[str, Any]] = {}
    #: computed output properties (unknown in a preview)
    computed: ClassVar[tuple[str, ...]] = ()
    #: output properties that are always secret (the servicer wraps them)
    secret_outputs: ClassVar[tuple[str, ...]] = ()

    def validate(self, news: dict[str, Any]) -> list[tuple[str, str]]:
        """Check failures (property, reason) of the (defaulted) inputs; unknowns must pass."""
        return []

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        inputs = dict(news)
        for k, v in self.defaults.items():
            if inputs.get(k) is None:
                inputs[k] = v
        return inputs, self.validate(inputs)

    def diff(self, id_: str, olds: dict[str, Any], old_inputs: dict[str, Any], news: dict[str, Any],
             ignore: frozenset[str] = frozenset()) -> Diff:
        d = Diff()
        for k in self.inputs:
            if k in ignore:
                continue
            if not values_equal(old_inputs.get(k), news.get(k)):
                d.changes.append(k)
                if k in self.replace_on:
                    d.replaces.append(k)
        return d

    def preview_outputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {**inputs, **{k: UNKNOWN for k in self.computed}}

    def create(self, ctx: Context, inputs: dict[str, Any], preview: bool) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def update(self, ctx: Context, id_: str, olds: dict[str, Any], old_inputs: dict[str, Any],
               news: dict[str, Any], preview: bool) -> dict[str, Any]:
        """Default: the new inputs with the old computed outputs (nothing to do)."""
        return {**news, **{k: olds[k] for k in self.computed if k in olds}}

    def delete(self, ctx: Context, id_: str, olds: dict[str, Any], old_inputs: dict[str, Any]) -> None:
        return None

    def read(self, id_: str, state: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
        """Refresh: the state as it is (nothing outside Pulumi to read)."""
        return state


def type_of(urn: str, given: str = "") -> str:
    """The resource type token of a request (its type field, else parsed from the URN)."""
    if given:
        return given
    # urn:pulumi:<stack>::<project>::<parent$...$type>::<name>
    parts = urn.split("::")
    return parts[2].split("$")[-1] if len(parts) >= 4 else ""


_SEVERITY = {
    "debug": engine_pb2.DEBUG,
    "info": engine_pb2.INFO,
    "warning": engine_pb2.WARNING,
    "error": engine_pb2.ERROR,
}


class Provider(provider_pb2_grpc.ResourceProviderServicer):
    """The gRPC servicer. RPCs not defined here answer UNIMPLEMENTED (the base class)."""

    def __init__(self, name: str, version: str, resources: Iterable[ResourceType],
                 engine_address: str = "") -> None:
        self.name = name
        self.version = version
        self.resources = {r.token: r for r in resources}
        self._engine_address = engine_address
        self._engine: engine_pb2_grpc.EngineStub | None = None
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()

    # --- engine log and cancellation -------------------------------------------------------

    def engine_log(self, message: str, severity: str, urn: str, ephemeral: bool) -> None:
        if not self._engine_address:
            return
        try:
            with self._lock:
                if self._engine is None:
                    channel = grpc.insecure_channel(self._engine_address, options=GRPC_OPTIONS)
                    self._engine = engine_pb2_grpc.EngineStub(channel)
                stub = self._engine
            stub.Log(engine_pb2.LogRequest(severity=_SEVERITY.get(severity, engine_pb2.INFO), message=message,
                                           urn=urn, ephemeral=ephemeral))
        except Exception as e:  # the log is best effort
            print(f"engine log failed: {e}", file=sys.stderr)

    def track(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.add(proc)

    def untrack(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    # --- helpers ----------------------------------------------------------------------------

    def _resource(self, context: grpc.ServicerContext, urn: str, given: str) -> ResourceType:
        token = type_of(urn, given)
        r = self.resources.get(token)
        if r is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"{self.name} (substitute provider {self.version}): unknown resource type '{token}'")
        assert r is not None
        return r

    def _ctx(self, urn: str) -> Context:
        return Context(self, urn)

    @staticmethod
    def _seal(r: ResourceType, outs: dict[str, Any]) -> dict[str, Any]:
        return {k: wire.secret(v) if k in r.secret_outputs else v for k, v in outs.items()}

    @staticmethod
    def _fail(context: grpc.ServicerContext, e: Exception) -> None:
        msg = str(e) if isinstance(e, ProviderError) else f"{type(e).__name__}: {e}"
        context.abort(grpc.StatusCode.UNKNOWN, msg)

    # --- plugin and provider configuration -------------------------------------------------

    def GetPluginInfo(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> plugin_pb2.PluginInfo:
        return plugin_pb2.PluginInfo(version=self.version)

    def GetSchema(self, request: provider_pb2.GetSchemaRequest,
                  context: grpc.ServicerContext) -> provider_pb2.GetSchemaResponse:
        schema = {
            "name": self.name,
            "version": self.version,
            "description": f"Substitute for pulumi-resource-{self.name} {self.version} (buildkit-farm), "
                           "implementing only the resources this project uses.",
            "resources": {t: {"inputProperties": {}, "properties": {}} for t in sorted(self.resources)},
        }
        return provider_pb2.GetSchemaResponse(schema=json.dumps(schema))

    def CheckConfig(self, request: provider_pb2.CheckRequest,
                    context: grpc.ServicerContext) -> provider_pb2.CheckResponse:
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: provider_pb2.DiffRequest,
                   context: grpc.ServicerContext) -> provider_pb2.DiffResponse:
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)

    def Configure(self, request: provider_pb2.ConfigureRequest,
                  context: grpc.ServicerContext) -> provider_pb2.ConfigureResponse:
        return provider_pb2.ConfigureResponse(acceptSecrets=True, supportsPreview=True, acceptResources=True)

    def Cancel(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> empty_pb2.Empty:
        with self._lock:
            procs = list(self._procs)
        for p in procs:
            try:
                p.terminate()
            except OSError:
                pass
        return empty_pb2.Empty()

    # --- resource lifecycle -------------------------------------------------------------------

    def Check(self, request: provider_pb2.CheckRequest, context: grpc.ServicerContext) -> provider_pb2.CheckResponse:
        r = self._resource(context, request.urn, request.type)
        try:
            inputs, failures = r.check(wire.decode_props(request.olds), wire.decode_props(request.news))
        except Exception as e:
            self._fail(context, e)
            raise
        return provider_pb2.CheckResponse(
            inputs=wire.encode_props(inputs),
            failures=[provider_pb2.CheckFailure(property=p, reason=why) for p, why in failures])

    def Diff(self, request: provider_pb2.DiffRequest, context: grpc.ServicerContext) -> provider_pb2.DiffResponse:
        r = self._resource(context, request.urn, request.type)
        olds = wire.decode_props(request.olds)
        old_inputs = wire.decode_props(request.old_inputs) if request.HasField("old_inputs") else {}
        if not old_inputs:  # older engines: the state holds the inputs too
            old_inputs = {k: v for k, v in olds.items() if k in r.inputs}
        # only top-level ignoreChanges paths are honoured (the engine applies them as well)
        ignore = frozenset(p for p in request.ignoreChanges if p.isidentifier())
        try:
            d = r.diff(request.id, olds, old_inputs, wire.decode_props(request.news), ignore)
        except Exception as e:
            self._fail(context, e)
            raise
        detailed = {
            k: provider_pb2.PropertyDiff(
                kind=provider_pb2.PropertyDiff.UPDATE_REPLACE if k in d.replaces else provider_pb2.PropertyDiff.UPDATE,
                inputDiff=k not in d.non_input)
            for k in d.changes
        }
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME if d.changes else provider_pb2.DiffResponse.DIFF_NONE,
            replaces=d.replaces, diffs=d.changes, detailedDiff=detailed, hasDetailedDiff=True,
            deleteBeforeReplace=False)

    def Create(self, request: provider_pb2.CreateRequest,
               context: grpc.ServicerContext) -> provider_pb2.CreateResponse:
        r = self._resource(context, request.urn, request.type)
        inputs = wire.decode_props(request.properties)
        try:
            if request.preview:
                id_, outs = "", r.preview_outputs(inputs)
            else:
                id_, outs = r.create(self._ctx(request.urn), inputs, False)
        except Exception as e:
            self._fail(context, e)
            raise
        return provider_pb2.CreateResponse(id=id_, properties=wire.encode_props(self._seal(r, outs)))

    def Update(self, request: provider_pb2.UpdateRequest,
               context: grpc.ServicerContext) -> provider_pb2.UpdateResponse:
        r = self._resource(context, request.urn, request.type)
        olds = wire.decode_props(request.olds)
        old_inputs = wire.decode_props(request.old_inputs) if request.HasField("old_inputs") else {}
        try:
            outs = r.update(self._ctx(request.urn), request.id, olds, old_inputs,
                            wire.decode_props(request.news), request.preview)
        except Exception as e:
            self._fail(context, e)
            raise
        return provider_pb2.UpdateResponse(properties=wire.encode_props(self._seal(r, outs)))

    def Delete(self, request: provider_pb2.DeleteRequest, context: grpc.ServicerContext) -> empty_pb2.Empty:
        r = self._resource(context, request.urn, request.type)
        olds = wire.decode_props(request.properties)
        old_inputs = wire.decode_props(request.old_inputs) if request.HasField("old_inputs") else {}
        try:
            r.delete(self._ctx(request.urn), request.id, olds, old_inputs)
        except Exception as e:
            self._fail(context, e)
            raise
        return empty_pb2.Empty()

    def Read(self, request: provider_pb2.ReadRequest, context: grpc.ServicerContext) -> provider_pb2.ReadResponse:
        r = self._resource(context, request.urn, request.type)
        state = wire.decode_props(request.properties)
        inputs = wire.decode_props(request.inputs)
        try:
            outs = r.read(request.id, state, inputs)
        except Exception as e:
            self._fail(context, e)
            raise
        return provider_pb2.ReadResponse(id=request.id, properties=wire.encode_props(self._seal(r, outs)),
                                         inputs=wire.encode_props(inputs))


def serve(make: Any, argv: Sequence[str]) -> None:
    """Run a provider as an engine plugin: ``make(engine_address)`` builds the servicer.

    The engine passes its address as the first non-flag argument (flags such as
    ``--logtostderr`` or ``-v=9`` are ignored), reads the port from our first line
    of stdout and kills us when done.
    """
    args = [a for a in argv if not a.startswith("-")]
    engine_address = args[0] if args else ""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64), options=GRPC_OPTIONS)
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(make(engine_address), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{port}\n")
    sys.stdout.flush()

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, on_signal)
    stop.wait()
    server.stop(grace=1).wait()
    os._exit(0)
