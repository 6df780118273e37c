"""A small OTLP receiver: a real gRPC server on the OpenTelemetry protobufs (PyPI), collecting what
buildkitd exports with OTEL_EXPORTER_OTLP_ENDPOINT. Traces are kept; metrics are accepted and counted
(buildkitd exports both once an endpoint is set). Each export's gRPC metadata is kept too (config
otel.headers arrive there)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass(frozen=True)
class Span:
    name: str
    #: the resource's attributes (service.name, bkf.node, ...)
    resource: dict[str, str]


@dataclass
class Received:
    spans: list[Span] = field(default_factory=list)
    metric_exports: int = 0
    #: the gRPC metadata (headers) of every trace export, in arrival order
    trace_metadata: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, predicate: Any, timeout_s: float) -> list[Span]:
        """The spans once ``predicate(spans)`` holds (or whatever came within ``timeout_s``)."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            with self.lock:
                spans = list(self.spans)
            if predicate(spans):
                return spans
            time.sleep(0.5)
        with self.lock:
            return list(self.spans)


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        spans = []
        for rs in request.resource_spans:
            resource = {a.key: a.value.string_value for a in rs.resource.attributes}
            spans += [Span(s.name, resource) for ss in rs.scope_spans for s in ss.spans]
        metadata = {str(k): str(v) for k, v in context.invocation_metadata()}
        with self.received.lock:
            self.received.spans += spans
            self.received.trace_metadata.append(metadata)
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    def Export(self, request: Any, context: Any) -> Any:
        with self.received.lock:
            self.received.metric_exports += 1
        return metrics_service_pb2.ExportMetricsServiceResponse()


@contextmanager
def otlp_receiver(host: str) -> Iterator[tuple[int, Received]]:
    """A plaintext OTLP/gRPC receiver on ``host`` (a free port): (port, what it received)."""
    received = Received()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(received), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(received), server)
    port = server.add_insecure_port(f"{host}:0")
    server.start()
    try:
        yield port, received
    finally:
        server.stop(grace=None)
