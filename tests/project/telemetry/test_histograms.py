"""The kit's own histograms export what the SDK's histogram would for the same measurements:
the same buckets, count, sum, min and max, cumulative or delta as the exporter asks, and the
exemplar of a measurement made in a sampled span."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from project.telemetry.histograms import HistogramExporter, HistogramRegistry
from project.telemetry.metrics import DURATION_BUCKETS

VALUES = (0.0005, 0.003, 0.003, 0.2, 7.0, 900.0)
ATTRIBUTES = {"task.name": "tests.add", "task.queue": "default"}


@pytest.fixture(autouse=True)
def _sdk_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite turns the SDK off for the processes it starts; these providers need it on."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")


class _Kept(MetricExporter):
    """Keeps what it is given: the wrapper's output, read back."""

    def __init__(self, temporality: AggregationTemporality) -> None:
        super().__init__(preferred_temporality={Histogram: temporality})
        self.exported: list[MetricsData] = []

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        self.exported.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        return None


def _points(data: MetricsData, name: str) -> list[Any]:
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


def _export(registry: HistogramRegistry, exporter: _Kept) -> MetricsData:
    HistogramExporter(exporter, registry, Resource.create({})).export(MetricsData([]))
    return exporter.exported[-1]


def _sdk_point(values: Sequence[float]) -> Any:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("project")
    histogram = meter.create_histogram(
        "sdk", unit="s", explicit_bucket_boundaries_advisory=DURATION_BUCKETS
    )
    for value in values:
        histogram.record(value, ATTRIBUTES)
    data = reader.get_metrics_data()
    assert data is not None
    (point,) = _points(data, "sdk")
    return point


def test_buckets_count_sum_min_and_max_are_the_sdks() -> None:
    registry = HistogramRegistry()
    histogram = registry.histogram("kit.task.duration", "test", DURATION_BUCKETS)
    for value in VALUES:
        histogram.record(value, ATTRIBUTES)
    (mine,) = _points(
        _export(registry, _Kept(AggregationTemporality.CUMULATIVE)), "kit.task.duration"
    )
    sdk = _sdk_point(VALUES)
    assert dict(mine.attributes) == ATTRIBUTES
    assert list(mine.explicit_bounds) == list(sdk.explicit_bounds)
    assert list(mine.bucket_counts) == list(sdk.bucket_counts)
    assert (mine.count, mine.min, mine.max) == (sdk.count, sdk.min, sdk.max)
    assert mine.sum == pytest.approx(sdk.sum)


@pytest.mark.parametrize(
    ("temporality", "second_count"),
    [(AggregationTemporality.CUMULATIVE, 3), (AggregationTemporality.DELTA, 1)],
)
def test_each_export_counts_as_the_exporter_asks(
    temporality: AggregationTemporality, second_count: int
) -> None:
    registry = HistogramRegistry()
    histogram = registry.histogram("kit.task.queue_wait", "test", DURATION_BUCKETS)
    exporter = _Kept(temporality)
    histogram.record(0.1, ATTRIBUTES)
    histogram.record(0.2, ATTRIBUTES)
    (first,) = _points(_export(registry, exporter), "kit.task.queue_wait")
    histogram.record(0.3, ATTRIBUTES)
    (second,) = _points(_export(registry, exporter), "kit.task.queue_wait")
    assert (first.count, second.count) == (2, second_count)


def test_a_measurement_in_a_sampled_span_is_its_buckets_exemplar() -> None:
    registry = HistogramRegistry()
    histogram = registry.histogram("kit.task.duration", "test", DURATION_BUCKETS)
    tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("tests")
    with tracer.start_as_current_span("run/tests.add") as span:
        histogram.record(0.2, ATTRIBUTES)
    histogram.record(0.3, ATTRIBUTES)  # no span: no exemplar
    (point,) = _points(
        _export(registry, _Kept(AggregationTemporality.CUMULATIVE)), "kit.task.duration"
    )
    (exemplar,) = point.exemplars
    context = span.get_span_context()
    assert (exemplar.trace_id, exemplar.span_id, exemplar.value) == (
        context.trace_id,
        context.span_id,
        0.2,
    )


def test_no_exemplars_when_the_filter_is_always_off() -> None:
    registry = HistogramRegistry("always_off")
    histogram = registry.histogram("kit.task.duration", "test", DURATION_BUCKETS)
    tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("tests")
    with tracer.start_as_current_span("run/tests.add"):
        histogram.record(0.2, ATTRIBUTES)
    exported = _export(registry, _Kept(AggregationTemporality.CUMULATIVE))
    (point,) = _points(exported, "kit.task.duration")
    assert (point.count, list(point.exemplars)) == (1, [])


def test_a_series_held_across_a_delta_export_counts_in_the_next_one() -> None:
    """Task hooks hold their series; a delta export zeroes it in place, so what is recorded
    into the held series afterwards is in the next export, with nothing carried over."""
    registry = HistogramRegistry()
    histogram = registry.histogram("kit.task.duration", "test", DURATION_BUCKETS)
    exporter = _Kept(AggregationTemporality.DELTA)
    held = histogram.series(ATTRIBUTES)
    histogram.record_stamped(held, 0.002, None)
    histogram.record_stamped(held, 7.0, None)
    (first,) = _points(_export(registry, exporter), "kit.task.duration")
    assert _points(_export(registry, exporter), "kit.task.duration") == []  # nothing new
    histogram.record_stamped(held, 0.3, None)
    (third,) = _points(_export(registry, exporter), "kit.task.duration")
    assert (first.count, first.min, first.max) == (2, 0.002, 7.0)
    assert (third.count, third.min, third.max, third.sum) == (1, 0.3, 0.3, 0.3)
    assert sum(third.bucket_counts) == 1


def test_the_span_context_given_with_a_measurement_is_its_exemplar() -> None:
    registry = HistogramRegistry()
    histogram = registry.histogram("kit.task.duration", "test", DURATION_BUCKETS)
    tracer = TracerProvider(sampler=ALWAYS_ON).get_tracer("tests")
    span = tracer.start_span("run/tests.add")  # not current: the caller hands its context in
    stamp = histogram.stamp(span.get_span_context())
    histogram.record_stamped(histogram.series(ATTRIBUTES), 0.2, stamp)
    (point,) = _points(
        _export(registry, _Kept(AggregationTemporality.CUMULATIVE)), "kit.task.duration"
    )
    (exemplar,) = point.exemplars
    assert exemplar.span_id == span.get_span_context().span_id
