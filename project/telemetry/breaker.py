"""A circuit breaker for exporters: a collector that is down costs the worker nothing.

OTLP exporters retry a failed export with backoff until their timeout, and gRPC keeps trying
to reconnect; with no collector that is work in every process for data nobody receives. After a
failed export the breaker drops exports for :data:`COOL_DOWN` seconds, then lets one through to
see whether the collector is back. Dropped telemetry is the price of a missing collector; the
tasks themselves never wait for it.

While the span breaker is open, :class:`BreakerSampler` does not record spans at all: making,
filling and queueing spans that would be dropped cost as much as exporting them (a quarter of a
no-op task's time), so with the collector down tasks run nearly as if telemetry were off.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

__all__ = ["COOL_DOWN", "Breaker", "BreakerMetricExporter", "BreakerSampler", "BreakerSpanExporter"]

COOL_DOWN = 15.0  # seconds exports are dropped after a failure


class Breaker:
    """Open for ``cool_down`` seconds after a failed export; shared by exporters that talk to
    the same collector."""

    def __init__(self, cool_down: float) -> None:
        self.cool_down = cool_down
        self.open_until = 0.0

    def closed(self) -> bool:
        return time.monotonic() >= self.open_until

    def record(self, ok: bool) -> None:
        self.open_until = 0.0 if ok else time.monotonic() + self.cool_down


class BreakerSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter, cool_down: float = COOL_DOWN) -> None:
        self.inner = inner
        self.breaker = Breaker(cool_down)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self.breaker.closed():
            return SpanExportResult.FAILURE
        result = self.inner.export(spans)
        self.breaker.record(result == SpanExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis)) if self.breaker.closed() else True


class BreakerMetricExporter(MetricExporter):
    def __init__(self, inner: MetricExporter, cool_down: float = COOL_DOWN) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.breaker = Breaker(cool_down)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if not self.breaker.closed():
            return MetricExportResult.FAILURE
        result = self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self.breaker.record(result == MetricExportResult.SUCCESS)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis)) if self.breaker.closed() else True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


class BreakerSampler(Sampler):
    """``inner``'s decision while the span breaker is closed; DROP while it is open."""

    def __init__(self, inner: Sampler, exporter: BreakerSpanExporter) -> None:
        self.inner = inner
        self.breaker = exporter.breaker

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if self.breaker.closed():
            return self.inner.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
        parent = get_current_span(parent_context).get_span_context()
        return SamplingResult(Decision.DROP, None, parent.trace_state if parent.is_valid else None)

    def get_description(self) -> str:
        return f"BreakerSampler{{{self.inner.get_description()}}}"
