"""Telemetry in the worker's life cycle: recycled children lose no span, a missing collector
costs one warning, log lines lead to their trace, bad settings stop start-up."""

from __future__ import annotations

import re
from typing import Any

import pytest

from project.errors import ConfigError
from project.telemetry.settings import load_telemetry_settings
from project.up.redis_server import free_port
from tests.support.otlp import OTLPReceiver
from tests.support.polling import eventually


def _env(endpoint: str | None) -> dict[str, str]:
    env = {"OTEL_SDK_DISABLED": "false", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    if endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    return env


@pytest.mark.e2e
def test_recycled_children_flush_their_spans_before_exiting(start_worker: Any) -> None:
    from tests.support.tasks import add

    receiver = OTLPReceiver().start()
    try:
        # Each child exits after one task: its spans must leave with it.
        env = {**_env(receiver.endpoint), "OTEL_BSP_SCHEDULE_DELAY": "60000"}
        start_worker(concurrency=1, extra_args=["--max-tasks-per-child=1"], env=env)
        ids = {add.delay(i, i).id for i in range(3)}
        for task_id in ids:
            add.AsyncResult(task_id).get(timeout=60)
        spans = receiver.wait_for_spans(
            lambda spans: {s.attributes.get("task.id") for s in spans} >= ids, timeout=30
        )
        assert len({s.resource["process.pid"] for s in spans if s.name == "run/tests.add"}) == 3
    finally:
        receiver.stop()


@pytest.mark.e2e
def test_unreachable_collector_costs_one_warning_and_no_task_waits(start_worker: Any) -> None:
    from tests.support.tasks import add

    dead_endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    env = {**_env(dead_endpoint), "OTEL_METRIC_EXPORT_INTERVAL": "200"}
    worker = start_worker(concurrency=2, env=env)
    results = [add.delay(i, 1) for i in range(200)]
    assert [r.get(timeout=60) for r in results] == [i + 1 for i in range(200)]
    eventually(lambda: "OpenTelemetry export problems are logged only once" in worker.output, 30)
    worker.stop()
    export_lines = [
        line
        for line in worker.output.splitlines()
        if re.search(r"export|StatusCode\.UNAVAILABLE", line, re.IGNORECASE)
    ]
    assert len(export_lines) == 1, export_lines
    assert "WARNING" in export_lines[0]


@pytest.mark.e2e
def test_no_endpoint_exports_nothing_and_says_so_once_per_process(start_worker: Any) -> None:
    from tests.support.tasks import add

    worker = start_worker(concurrency=1, extra_args=["--loglevel=DEBUG"], env=_env(None))
    assert add.delay(1, 2).get(timeout=30) == 3
    worker.stop()
    assert "no OTLP endpoint configured" in worker.output
    assert "Traceback" not in worker.output


@pytest.mark.e2e
def test_task_log_lines_carry_the_trace_and_span_of_their_task(start_worker: Any) -> None:
    from tests.support.tasks import log_something

    receiver = OTLPReceiver().start()
    try:
        worker = start_worker(concurrency=1, env=_env(receiver.endpoint))
        result = log_something.delay("hello from a task")
        result.get(timeout=30)
        line = worker.wait_for("hello from a task")
        spans = receiver.wait_for_spans(
            lambda spans: any(s.attributes.get("task.id") == result.id for s in spans)
        )
        (run,) = [s for s in spans if s.attributes.get("task.id") == result.id]
        assert f"trace_id={run.trace_id} span_id={run.span_id}" in line
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"),
        ("OTEL_TRACES_EXPORTER", "zipkin"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
        ("OTEL_SDK_DISABLED", "perhaps"),
    ],
)
def test_malformed_telemetry_setting_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}="):
        load_telemetry_settings({variable: value})


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.e2e
def test_prometheus_endpoint_sums_every_child_including_recycled_ones(start_worker: Any) -> None:
    from tests.support.tasks import add

    port = free_port()
    env = {
        "OTEL_SDK_DISABLED": "false",
        "OTEL_METRICS_EXPORTER": "prometheus",
        "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
        "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
        "OTEL_METRIC_EXPORT_INTERVAL": "200",
    }
    # Two children, each replaced after 3 tasks: 20 tasks pass through about 7 processes.
    start_worker(concurrency=2, extra_args=["--max-tasks-per-child=3"], env=env)
    for result in [add.delay(i, i) for i in range(20)]:
        result.get(timeout=60)
    processed = (
        "kit_tasks_processed_total",
        (("task_name", "tests.add"), ("task_queue", "default")),
    )

    def scraped_all() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
        samples = _scrape(port)
        return samples if samples.get(processed) == 20 else None

    samples = eventually(scraped_all, timeout=30)
    duration_count = (
        "kit_task_duration_seconds_count",
        (("task_name", "tests.add"), ("task_outcome", "success"), ("task_queue", "default")),
    )
    assert samples[duration_count] == 20
    assert samples[("kit_workers_alive", ())] == 1
    assert ("kit_queue_depth", (("task_queue", "critical"),)) in samples
