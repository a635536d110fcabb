"""A circuit breaker for exporters: a collector that is down costs the worker nothing.

OTLP exporters retry a failed export with backoff until their timeout, and gRPC keeps trying
to reconnect; with no collector that is work in every process for data nobody receives. After a
failed export the breaker drops exports for :data:`COOL_DOWN` seconds, then lets one through to
see whether the collector is back. Dropped telemetry is the price of a missing collector; the
tasks themselves never wait for it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

__all__ = ["COOL_DOWN", "BreakerMetricExporter", "BreakerSpanExporter"]

COOL_DOWN = 15.0  # seconds exports are dropped after a failure


class _Breaker:
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
        self.breaker = _Breaker(cool_down)

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
        self.breaker = _Breaker(cool_down)

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
