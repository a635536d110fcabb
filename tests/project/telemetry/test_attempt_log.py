"""An attempt's metrics, logged as it starts and succeeds, are in the next collection, exactly:
none lost to an append made while a drain runs, and a long log drained before it grows on."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from project.broker.queues import PUBLISHED_AT_HEADER
from project.telemetry import attempt_log
from project.telemetry.histograms import HistogramRegistry
from project.telemetry.hooks import TaskTelemetry
from project.telemetry.messaging import MessagingMetrics
from project.telemetry.metrics import TaskMetrics

SPAN = NonRecordingSpan(SpanContext(0xABC, 0xDEF, False, TraceFlags(1)))


@pytest.fixture(autouse=True)
def _sdk_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite turns the SDK off for the processes it starts; these providers need it on."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")


def _telemetry() -> tuple[TaskTelemetry, HistogramRegistry, InMemoryMetricReader]:
    """The task hooks as ``setup_telemetry`` wires them, over an in-memory reader."""
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("project")
    registry = HistogramRegistry()
    hooks = TaskTelemetry(TaskMetrics(meter, registry), MessagingMetrics(meter, registry))
    return hooks, registry, reader


def _attempts(hooks: TaskTelemetry, count: int, prefix: str = "t") -> None:
    values = {PUBLISHED_AT_HEADER: time.time() - 0.5}
    for n in range(count):
        task_id = f"{prefix}-{n}"
        hooks.begin(values, task_id, "tests.add", "default", "celery@host", SPAN)
        hooks.end(task_id, "SUCCESS", SPAN)


def _histogram_counts(registry: HistogramRegistry) -> dict[str, int]:
    metrics = registry.collect(AggregationTemporality.CUMULATIVE)
    points: dict[str, list[Any]] = {m.name: list(m.data.data_points) for m in metrics}
    return {name: sum(p.count for p in found) for name, found in points.items()}


def _counter_totals(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }
    return {name: sum(p.value for p in found) for name, found in points.items()}


def test_every_logged_attempt_is_in_the_next_collection() -> None:
    hooks, registry, reader = _telemetry()
    _attempts(hooks, 7)
    totals = _counter_totals(reader)  # the counters' callbacks drain first
    assert totals["messaging.client.consumed.messages"] == 7
    assert totals["kit.tasks.processed"] == 7
    assert _histogram_counts(registry) == {
        "kit.task.queue_wait": 7,
        "kit.task.duration": 7,
        "messaging.process.duration": 7,
    }
    collected = registry.collect(AggregationTemporality.CUMULATIVE)
    (waits,) = [m for m in collected if m.name == "kit.task.queue_wait"]
    point: Any = waits.data.data_points[0]
    assert point.min >= 0.5  # published half a second before it started


def test_an_attempt_logged_while_a_drain_runs_is_not_lost() -> None:
    hooks, registry, _ = _telemetry()
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            hooks.log.drain()

    drainer = threading.Thread(target=drain)
    drainer.start()
    try:
        workers = [
            threading.Thread(target=_attempts, args=(hooks, 5_000, f"w{n}")) for n in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        stop.set()
        drainer.join()
    assert _histogram_counts(registry)["kit.task.duration"] == 20_000


def test_a_long_log_is_drained_by_the_attempt_that_fills_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(attempt_log, "DRAIN_AT", 10)
    monkeypatch.setattr("project.telemetry.hooks.DRAIN_AT", 10)
    hooks, _, _ = _telemetry()
    _attempts(hooks, 25)
    series = hooks._series["tests.add", "default"]
    success = {"task.name": "tests.add", "task.queue": "default", "task.outcome": "success"}
    recorded = hooks.metrics.duration.series(success).count
    assert len(series.started) < 10 and len(series.ended) < 10  # never longer than DRAIN_AT
    assert recorded >= 10 and recorded + len(series.ended) == 25
    assert series.wait.count + len(series.started) == 25
