"""A counting OTLP/gRPC receiver: the "collector" the telemetry benchmarks export to.

Why a real gRPC server and not an in-memory exporter or a closed port: what the benchmark
measures is the kit's real export path (BatchSpanProcessor, the OTLP exporter's protobuf
encoding and gRPC calls) against a collector that answers, as in production. The receiver
decodes every request (opentelemetry-proto) but keeps only counts: spans per name prefix and
export requests, so it takes as little CPU as possible from the machine it shares with the
worker. It runs on threads of the benchmark process; protobuf decoding happens in C.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent import futures
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

__all__ = ["OTLPSink", "span_prefix"]

SERVER_THREADS = 2


def span_prefix(name: str) -> str:
    """``run/bench.noop`` -> ``run``: the kind of span, without the task name."""
    return name.split("/", 1)[0]


class _Receiver(
    trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer
):
    """Both OTLP services in one: ``Export`` tells a trace request from a metrics one by its
    type (each service's handler decodes its own request type before calling it)."""

    def __init__(self, sink: OTLPSink) -> None:
        self.sink = sink

    def Export(self, request: Any, context: Any) -> Any:
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            self.sink._count_spans(request)
            return trace_service_pb2.ExportTraceServiceResponse()
        self.sink._count_metrics(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class OTLPSink:
    """gRPC server on a free loopback port; ``endpoint`` goes in OTEL_EXPORTER_OTLP_ENDPOINT."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: Counter[str] = Counter()
        self._metric_requests = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=SERVER_THREADS))
        receiver = _Receiver(self)
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(receiver, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OTLPSink:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(grace=None)

    def __enter__(self) -> OTLPSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self._spans.clear()
            self._metric_requests = 0

    def spans(self) -> dict[str, int]:
        """Spans received since the last reset, by :func:`span_prefix`."""
        with self._lock:
            return dict(self._spans)

    def metric_requests(self) -> int:
        with self._lock:
            return self._metric_requests

    def wait_for_spans(self, prefix: str, count: int, timeout: float) -> int:
        """Wait until ``count`` spans named ``prefix/...`` arrived; return how many did."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.spans().get(prefix, 0)
            if got >= count or time.monotonic() >= deadline:
                return got
            time.sleep(0.1)

    def _count_spans(self, request: Any) -> None:
        counts: Counter[str] = Counter()
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                counts.update(span_prefix(span.name) for span in scope_spans.spans)
        with self._lock:
            self._spans.update(counts)

    def _count_metrics(self, request: Any) -> None:
        with self._lock:
            self._metric_requests += 1
