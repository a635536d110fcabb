"""Secrets in a task's arguments, return value and error message reach neither the OTLP
receiver (spans, metrics, logs) nor the worker's log: a real worker subprocess, a real
receiver."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.otlp import OTLPReceiver, Span, telemetry_env
from tests.support.polling import eventually

EMAIL = "grace.hopper@navy.example"
URL_SECRET = "hunter2pass"
URL = f"postgres://grace:{URL_SECRET}@db.internal:5432/app"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0"
CARD = "4111 1111 1111 1111"
HOSTILE = f"mail {EMAIL} via {URL} with Bearer {TOKEN} and card {CARD}"
FORBIDDEN = (EMAIL, URL_SECRET, TOKEN, CARD, CARD.replace(" ", ""))


def _span_values(span: Span) -> list[str]:
    values = [*span.attributes.values(), span.status_message, span.name]
    for _, attributes in span.events:
        values.extend(attributes.values())
    return [str(v) for v in values]


def _clean(text: str) -> bool:
    return not any(secret in text for secret in FORBIDDEN)


@pytest.mark.e2e
def test_secrets_in_arguments_results_and_errors_reach_no_signal_and_no_log(
    receiver: OTLPReceiver, start_worker: Any
) -> None:
    from tests.project.telemetry.hostile_tasks import hostile_echo, hostile_fail

    env = telemetry_env(
        receiver,
        KIT_IMPORTS="tests.project.telemetry.hostile_tasks",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_BLRP_SCHEDULE_DELAY="100",
    )
    worker = start_worker(concurrency=1, env=env)
    try:
        echoed = hostile_echo.delay(HOSTILE)
        assert echoed.get(timeout=30) == f"echo: {HOSTILE}"  # the task itself is untouched
        failed = hostile_fail.delay(HOSTILE)
        with pytest.raises(ValueError):
            failed.get(timeout=30)
        worker.wait_for(f"[{failed.id}]")  # Celery logged the failure
        worker.wait_for(f"[{echoed.id}]")
        spans = receiver.wait_for_spans(
            lambda spans: (
                {echoed.id, failed.id}
                <= {s.attributes.get("task.id") for s in spans if s.kind == 5}
            )
        )

        def logged_both() -> bool:
            bodies = " ".join(str(r.body) for r in receiver.log_records())
            return echoed.id in bodies and failed.id in bodies

        eventually(logged_both, 30)
    finally:
        worker.stop()
    for span in spans:
        for value in _span_values(span):
            assert _clean(value), (span.name, value)
    (run_failed,) = [s for s in spans if s.kind == 5 and s.attributes["task.id"] == failed.id]
    assert "<email>" in run_failed.status_message or any(
        "<email>" in str(v) for _, a in run_failed.events for v in a.values()
    )  # redacted, not dropped
    for point in receiver.metric_points():
        assert _clean(str(point.attributes)), point
    for record in receiver.log_records():
        assert _clean(str(record.body)) and _clean(str(record.attributes)), record
    assert any("<card>" in str(r.body) for r in receiver.log_records())
    output = worker.output
    assert failed.id in output and echoed.id in output
    for line in output.splitlines():
        assert _clean(line), line
