"""A real OTLP/gRPC receiver: decodes what exporters send, as a collector would.

Not an in-memory exporter: the kit's processes export over the network with their real OTLP
exporters, and the tests read back the decoded opentelemetry-proto messages.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    attributes: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error
    status_message: str
    events: list[tuple[str, dict[str, Any]]]
    resource: dict[str, Any]
    start_ns: int = 0
    links: list[tuple[str, str]] = field(default_factory=list)  # (trace id, span id)

    @property
    def is_error(self) -> bool:
        return self.status_code == 2


@dataclass
class MetricPoint:
    name: str
    attributes: dict[str, Any]
    value: float  # sum or gauge value; for histograms the count of observations
    kind: str
    resource: dict[str, Any] = field(default_factory=dict)
    exemplar_trace_ids: list[str] = field(default_factory=list)  # hex, histograms only


@dataclass
class LogRecord:
    body: Any
    severity: str
    trace_id: str  # hex, "" outside a span
    span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: OTLPReceiver) -> None:
        self.sink = sink

    def Export(self, request: Any, context: Any) -> Any:
        self.sink._add_traces(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, sink: OTLPReceiver) -> None:
        self.sink = sink

    def Export(self, request: Any, context: Any) -> Any:
        self.sink._add_metrics(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, sink: OTLPReceiver) -> None:
        self.sink = sink

    def Export(self, request: Any, context: Any) -> Any:
        self.sink._add_logs(request)
        return logs_service_pb2.ExportLogsServiceResponse()


class OTLPReceiver:
    """gRPC server on a free loopback port; ``endpoint`` goes in OTEL_EXPORTER_OTLP_ENDPOINT."""

    def __init__(self, port: int = 0) -> None:
        self._lock = threading.Lock()
        self.spans: list[Span] = []
        self.metric_requests: list[Any] = []
        self.logs: list[LogRecord] = []
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(self), self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(self), self.server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(self), self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OTLPReceiver:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(grace=None)

    def _add_traces(self, request: Any) -> None:
        decoded: list[Span] = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    decoded.append(
                        Span(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            attributes=_attributes(span.attributes),
                            status_code=span.status.code,
                            status_message=span.status.message,
                            events=[(e.name, _attributes(e.attributes)) for e in span.events],
                            resource=resource,
                            start_ns=span.start_time_unix_nano,
                            links=[(k.trace_id.hex(), k.span_id.hex()) for k in span.links],
                        )
                    )
        with self._lock:
            self.spans.extend(decoded)

    def _add_logs(self, request: Any) -> None:
        decoded = [
            LogRecord(
                body=any_value(record.body),
                severity=record.severity_text,
                trace_id=record.trace_id.hex(),
                span_id=record.span_id.hex(),
                attributes=_attributes(record.attributes),
                resource=_attributes(resource_logs.resource.attributes),
            )
            for resource_logs in request.resource_logs
            for scope in resource_logs.scope_logs
            for record in scope.log_records
        ]
        with self._lock:
            self.logs.extend(decoded)

    def log_records(self) -> list[LogRecord]:
        with self._lock:
            return list(self.logs)

    def _add_metrics(self, request: Any) -> None:
        with self._lock:
            self.metric_requests.append(request)

    def wait_for_spans(
        self, predicate: Callable[[list[Span]], bool], timeout: float = 60
    ) -> list[Span]:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                spans = list(self.spans)
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted({s.name for s in spans})
                raise AssertionError(f"spans not received in {timeout}s; have {names}")
            time.sleep(0.1)

    def metric_points(self) -> Iterator[MetricPoint]:
        """Every data point received, in arrival order (cumulative: the last one is the total)."""
        with self._lock:
            requests = list(self.metric_requests)
        for request in requests:
            for resource_metrics in request.resource_metrics:
                resource = _attributes(resource_metrics.resource.attributes)
                for scope in resource_metrics.scope_metrics:
                    for metric in scope.metrics:
                        yield from _points(metric, resource)

    def latest(self, name: str) -> dict[tuple[tuple[str, Any], ...], MetricPoint]:
        """Latest point of metric ``name`` per (resource instance, attribute set)."""
        latest: dict[tuple[tuple[str, Any], ...], MetricPoint] = {}
        for point in self.metric_points():
            if point.name == name:
                key = (
                    ("service.instance.id", point.resource.get("service.instance.id")),
                    *sorted(point.attributes.items()),
                )
                latest[key] = point
        return latest

    def total(self, name: str, **attributes: Any) -> float:
        """Sum over processes of the latest cumulative value of ``name`` matching ``attributes``."""
        return sum(
            point.value
            for point in self.latest(name).values()
            if all(point.attributes.get(k) == v for k, v in attributes.items())
        )


def telemetry_env(receiver: OTLPReceiver, **extra: str) -> dict[str, str]:
    """A worker's environment that exports to ``receiver`` quickly."""
    return {
        "OTEL_SDK_DISABLED": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        **extra,
    }


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in pairs}


def _points(metric: Any, resource: dict[str, Any]) -> Iterator[MetricPoint]:
    kind = metric.WhichOneof("data")
    data = getattr(metric, kind)
    for point in data.data_points:
        attributes = _attributes(point.attributes)
        exemplars = [e.trace_id.hex() for e in point.exemplars if e.trace_id]
        if kind == "histogram":
            value = float(point.count)
        elif point.WhichOneof("value") == "as_int":
            value = float(point.as_int)
        else:
            value = float(point.as_double)
        yield MetricPoint(metric.name, attributes, value, kind, resource, exemplars)
