"""Exemplars on the worker's own ``/metrics`` (OpenMetrics): a bucket of
``kit_task_duration_seconds`` and of ``kit_task_queue_wait_seconds`` names the trace of an
attempt that fell in it, and that trace is one the collector received."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from project.up.redis_server import free_port
from tests.support.otlp import OTLPReceiver
from tests.support.polling import eventually

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _exemplar_traces(port: int) -> dict[str, set[str]]:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Accept": OPENMETRICS}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        text = response.read().decode()
    traces: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):  # type: ignore[no-untyped-call]
        for sample in family.samples:
            if sample.exemplar is not None:
                traces.setdefault(family.name, set()).add(sample.exemplar.labels["trace_id"])
    return traces


@pytest.mark.e2e
def test_duration_and_queue_wait_buckets_carry_the_trace_of_a_sampled_attempt(
    receiver: OTLPReceiver, start_worker: Any
) -> None:
    from tests.support.tasks import add

    port = free_port()
    env = {
        "OTEL_SDK_DISABLED": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
    }
    start_worker(concurrency=2, env=env)
    for result in [add.delay(i, i) for i in range(6)]:
        result.get(timeout=60)

    def both() -> dict[str, set[str]] | None:
        traces = _exemplar_traces(port)
        wanted = ("kit_task_duration_seconds", "kit_task_queue_wait_seconds")
        return traces if all(traces.get(name) for name in wanted) else None

    traces = eventually(both, timeout=30)
    spans = receiver.wait_for_spans(lambda s: len([x for x in s if x.kind == 5]) >= 6)
    received = {span.trace_id for span in spans}
    assert traces["kit_task_duration_seconds"] <= received
    assert traces["kit_task_queue_wait_seconds"] <= received
