"""The kit's histograms, aggregated in the process and exported with the SDK's metrics.

An SDK ``Histogram.record`` validates, copies and hashes its attributes, then finds the stream
and offers an exemplar: about 12 us, and a task attempt records three (``kit.task.duration``,
``kit.task.queue_wait``, ``messaging.process.duration``), a third of what telemetry cost on the
task's thread. The kit's histograms need none of that per measurement: their buckets are fixed
(:data:`~project.telemetry.metrics.DURATION_BUCKETS`), their attribute sets are bounded and built
once (:func:`~project.telemetry.metrics.task_attributes`). :class:`KitHistogram` therefore counts
under a lock (a bisect and a few additions) and :class:`HistogramExporter`, wrapped around the
process's metric exporter, adds its points to each export as the SDK's own ``HistogramData``:
the same buckets, sum, count, min and max, in the temporality the exporter asks for, and the
SDK's ``trace_based`` exemplars (the latest measurement made in a sampled span, per bucket,
since the previous export; ``OTEL_METRICS_EXEMPLAR_FILTER`` applies as it does to the SDK's).
Unlike the SDK's instruments, these are not subject to Views, and they ride on the SDK's
exports: a process whose SDK instruments recorded nothing exports none (the kit's histograms
are always recorded beside a counter: ``kit.tasks.*``, ``messaging.client.*``).
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from opentelemetry.sdk.metrics import Exemplar, Histogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, get_current_span

__all__ = ["HistogramExporter", "HistogramRegistry", "KitHistogram", "Measurement", "Stamp"]

SCOPE = InstrumentationScope("project")  # the meter the kit's other instruments come from
#: An exemplar's span and trace ids (both ``None``: a measurement made outside any span).
Stamp = tuple[int | None, int | None]
_NO_SPAN: Stamp = (None, None)
#: A measurement as :meth:`KitHistogram.record_many` takes it: value, exemplar ids, and when.
Measurement = tuple[float | None, Stamp | None, int]


class _Series:
    __slots__ = ("attributes", "count", "counts", "exemplars", "maximum", "minimum", "total")

    def __init__(self, attributes: Mapping[str, str], buckets: int) -> None:
        self.attributes = dict(attributes)
        self.counts = [0] * buckets
        self.count = 0
        self.total = 0.0
        self.minimum = float("inf")
        self.maximum = float("-inf")
        # bucket -> (value, time, span id, trace id): made into Exemplars at export only
        self.exemplars: dict[int, tuple[float, int, int | None, int | None]] = {}


class KitHistogram:
    """One histogram of seconds; ``record`` is what the task hooks call."""

    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        bounds: Sequence[float],
        exemplar_filter: str = "trace_based",
    ) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.bounds = tuple(float(b) for b in bounds)
        self._series: dict[frozenset[tuple[str, str]], _Series] = {}
        self._lock = threading.Lock()
        self._start = time.time_ns()  # cumulative points count from here
        self._last_collect = self._start
        self._exemplars = exemplar_filter != "always_off"
        self._unsampled_too = exemplar_filter == "always_on"

    def series(self, attributes: Mapping[str, str]) -> _Series:
        """The series of ``attributes``, kept for good: a caller that records the same set
        over and over holds it (:meth:`record_stamped`) instead of hashing the set each time."""
        key = frozenset(attributes.items())
        found = self._series.get(key)
        if found is None:
            with self._lock:
                found = self._series.get(key)
                if found is None:
                    found = self._series[key] = _Series(attributes, len(self.bounds) + 1)
        return found

    def record(self, value: float, attributes: Mapping[str, str]) -> None:
        """Record ``value`` under ``attributes``, in the current span."""
        stamp = self.stamp(get_current_span().get_span_context()) if self._exemplars else None
        self.record_stamped(self.series(attributes), value, stamp)

    def stamp(self, context: SpanContext) -> Stamp | None:
        """What an exemplar of a measurement made in the span of ``context`` holds (its span
        and trace ids), or ``None`` when the exemplar filter keeps none: worked out once by a
        caller that records several measurements in the same span."""
        if not self._exemplars or not (self._unsampled_too or context.trace_flags.sampled):
            return None
        if context.is_valid:
            return context.span_id, context.trace_id
        return _NO_SPAN

    def record_stamped(self, series: _Series, value: float, stamp: Stamp | None) -> None:
        """Record ``value`` in ``series``, with ``stamp`` (:meth:`stamp`) as its exemplar."""
        self.record_many(series, ((value, stamp, time.time_ns()),))

    def record_many(self, series: _Series, measurements: Iterable[Measurement]) -> None:
        """Record each ``(value, stamp, when)`` in ``series`` under one lock (``when``: the
        measurement's time, ns since the epoch, its exemplar's; a ``None`` value is skipped:
        an attempt whose queue wait is not known)."""
        bounds = self.bounds
        with self._lock:
            counts = series.counts  # a delta collection replaces it
            exemplars = series.exemplars
            for value, stamp, when in measurements:
                if value is None or not value >= 0.0:  # negative or NaN: the SDK drops them
                    continue
                index = bisect_left(bounds, value)  # the SDK's bucket: upper bound inclusive
                counts[index] += 1
                series.count += 1
                series.total += value
                if value < series.minimum:
                    series.minimum = value
                if value > series.maximum:
                    series.maximum = value
                if stamp is not None:
                    exemplars[index] = (value, when, *stamp)

    def collect(self, temporality: AggregationTemporality) -> Metric | None:
        """The points since the start (cumulative) or since the last collection (delta)."""
        now = time.time_ns()
        delta = temporality == AggregationTemporality.DELTA
        with self._lock:
            taken = list(self._series.values())
            started, self._last_collect = (self._last_collect if delta else self._start), now
            points = [
                HistogramDataPoint(
                    attributes=dict(s.attributes),
                    start_time_unix_nano=started,
                    time_unix_nano=now,
                    count=s.count,
                    sum=s.total,
                    bucket_counts=list(s.counts),
                    explicit_bounds=self.bounds,
                    min=s.minimum,
                    max=s.maximum,
                    exemplars=[Exemplar({}, *s.exemplars[i]) for i in sorted(s.exemplars)],
                )
                for s in taken
                if s.count
            ]
            for s in taken:
                s.exemplars = {}  # each export carries the exemplars made since the previous
                if delta:  # zeroed where it is, since callers hold their series
                    s.counts = [0] * len(s.counts)
                    s.count, s.total = 0, 0.0
                    s.minimum, s.maximum = float("inf"), float("-inf")
        if not points:
            return None
        data = HistogramData(data_points=points, aggregation_temporality=temporality)
        return Metric(self.name, self.description, self.unit, data)


class HistogramRegistry:
    """The kit's histograms of one process (made with its providers)."""

    def __init__(self, exemplar_filter: str = "trace_based") -> None:
        self.exemplar_filter = exemplar_filter  # OTEL_METRICS_EXEMPLAR_FILTER
        self.histograms: list[KitHistogram] = []
        #: Called before each collection: what records measurements logged for later
        #: (:meth:`project.telemetry.attempt_log.AttemptLog.drain`).
        self.before_collect: list[Callable[[], None]] = []

    def histogram(self, name: str, description: str, bounds: Sequence[float]) -> KitHistogram:
        made = KitHistogram(name, "s", description, bounds, self.exemplar_filter)
        self.histograms.append(made)
        return made

    def collect(self, temporality: AggregationTemporality) -> list[Metric]:
        for drain in self.before_collect:
            drain()
        return [m for h in self.histograms if (m := h.collect(temporality)) is not None]


class HistogramExporter(MetricExporter):
    """Wraps the process's metric exporter: each export carries the kit's histograms too."""

    def __init__(
        self, inner: MetricExporter, registry: HistogramRegistry, resource: Resource
    ) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self.inner = inner
        self.registry = registry
        self.resource = resource
        preferred = (inner._preferred_temporality or {}).get(Histogram)
        self.temporality = preferred or AggregationTemporality.CUMULATIVE

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        metrics = self.registry.collect(self.temporality)
        if metrics:
            metrics_data = _with(metrics_data, metrics, self.resource)
        return self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def _with(data: MetricsData, metrics: list[Metric], resource: Resource) -> MetricsData:
    """``data`` with ``metrics`` added to the kit's scope of the first resource."""
    resources = list(data.resource_metrics) if data is not None else []
    if not resources:
        return MetricsData([ResourceMetrics(resource, [ScopeMetrics(SCOPE, metrics, "")], "")])
    first = resources[0]
    scopes = list(first.scope_metrics)
    for index, scope in enumerate(scopes):
        if scope.scope.name == SCOPE.name:
            scopes[index] = replace(scope, metrics=[*scope.metrics, *metrics])
            break
    else:
        scopes.append(ScopeMetrics(SCOPE, metrics, ""))
    resources[0] = replace(first, scope_metrics=scopes)
    return MetricsData(resources)
