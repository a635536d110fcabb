"""One trace from a Flask request through a chain with a group and a retry, read back from a
real OTLP receiver, with the task metrics (exemplars included), the messaging conventions'
attributes and metrics, and the log records the same processes exported."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.otlp import OTLPReceiver, Span, telemetry_env
from tests.support.polling import eventually
from tests.support.webapps import ExampleServer

EMAIL = "ada.lovelace@example.com"
PRODUCER, CONSUMER = 4, 5  # span kinds


def _assert_messaging(span: Span) -> None:
    """The conventions' attributes on a publish or process span, beside the stock ones."""
    a = span.attributes
    assert a["messaging.system"] == "redis", span.name
    queue = a["messaging.destination.name"]
    assert queue in ("default", "low", "high"), span.name
    if span.kind == PRODUCER:
        assert (a["messaging.operation.type"], a["messaging.operation.name"]) == ("send", "send")
        assert a["messaging.message.id"]
    else:
        assert (a["messaging.operation.type"], a["messaging.operation.name"]) == (
            "process",
            "process",
        )
        assert a["messaging.message.id"] == a["task.id"]
        assert a["messaging.consumer.group.name"]
    assert "celery.action" in a  # the stock attributes stay


def _by_name(spans: list[Span], name: str) -> list[Span]:
    return sorted((s for s in spans if s.name == name), key=lambda s: s.start_ns)


def _all_attribute_values(span: Span) -> Iterator[Any]:
    yield from span.attributes.values()
    yield from span.resource.values()
    for _, attributes in span.events:
        yield from attributes.values()
    yield span.status_message


@pytest.mark.e2e
def test_one_trace_from_request_through_chain_group_retry_and_metrics(
    receiver: OTLPReceiver, start_worker: Any
) -> None:
    from project import app

    env = telemetry_env(
        receiver,
        KIT_IMPORTS="tests.support.tasks,examples.signup_tasks",
        OTEL_LOGS_EXPORTER="otlp",
        OTEL_BLRP_SCHEDULE_DELAY="100",
    )
    worker = start_worker(concurrency=2, env=env)
    flask = ExampleServer("examples.flask_app", env)
    try:
        status, body = flask.post("/signup", {"email": EMAIL, "fail_first_attempts": 1})
        assert status == 202
        result = app.AsyncResult(body["workflow_id"])
        assert result.get(timeout=60).startswith("trial:")
    finally:
        flask.stop()
        worker.stop()

    def complete(spans: list[Span]) -> bool:
        return len([s for s in spans if s.name.startswith("run/")]) >= 5 and any(
            s.name == "POST /signup" for s in spans
        )

    received = receiver.wait_for_spans(complete)
    (request_span,) = [s for s in received if s.name == "POST /signup"]
    assert request_span.parent_id == ""
    assert request_span.resource["celery.role"] == "producer"
    # One trace, rooted in the HTTP request (the readiness probe's GET /health is its own).
    spans = [s for s in received if s.name != "GET /health"]
    assert {span.trace_id for span in spans} == {request_span.trace_id}
    by_id = {span.span_id: span for span in spans}

    def parent(span: Span) -> Span:
        return by_id[span.parent_id]

    (run_a,) = _by_name(spans, "run/signup:create_account")
    assert parent(run_a).name == "apply_async/signup:create_account"
    assert parent(parent(run_a)) is request_span

    # The group's steps were published by step a; the retry by b's first attempt.
    first_b, second_b = _by_name(spans, "run/signup:send_welcome")
    (run_c,) = _by_name(spans, "run/signup:grant_trial")
    for step in (first_b, run_c):
        assert parent(parent(step)) is run_a
    assert parent(parent(second_b)) is first_b

    assert (first_b.attributes["task.attempt"], second_b.attributes["task.attempt"]) == (1, 2)
    assert first_b.is_error and first_b.attributes["task.outcome"] == "retry"
    assert any(name == "task.retry" for name, _ in first_b.events)
    assert any(name == "exception" for name, _ in first_b.events)
    assert not second_b.is_error and second_b.attributes["task.outcome"] == "success"

    # The chord callback is published by whichever header task finished last.
    (run_d,) = _by_name(spans, "run/signup:notify_team")
    assert parent(parent(run_d)) in (second_b, run_c)
    assert run_d.attributes["task.queue"] == "low"
    assert run_d.attributes["task.name"] == "signup:notify_team"
    assert run_d.attributes["task.priority"] == 5

    # The messaging conventions on every publish and process span; the stock names stay
    # (OTEL_SEMCONV_STABILITY_OPT_IN unset: both).
    publishes = [s for s in spans if s.kind == PRODUCER]
    processes = [s for s in spans if s.kind == CONSUMER]
    assert len(publishes) == 5 and len(processes) == 5  # a, b (twice: a retry), c, d
    for span in publishes + processes:
        _assert_messaging(span)
        assert span.name.startswith("apply_async/" if span.kind == PRODUCER else "run/")
        assert "messaging.destination" in span.attributes  # the old name, kept in dup mode
    assert run_d.attributes["messaging.destination.name"] == "low"

    # No e-mail address anywhere, though the address was an argument and in an error message.
    for span in spans:
        for value in _all_attribute_values(span):
            assert "@example.com" not in str(value), (span.name, value)

    # Metrics, exported by the Flask process and both worker children.
    def metric_total(name: str, **attributes: Any) -> float:
        return receiver.total(name, **attributes)

    eventually(lambda: metric_total("kit.tasks.processed") >= 4, 30)
    assert metric_total("kit.tasks.enqueued") == 4  # a, b, c, d: a retry is not new work
    assert metric_total("kit.tasks.processed") == 4
    assert metric_total("kit.tasks.retried", **{"task.name": "signup:send_welcome"}) == 1
    assert metric_total("kit.tasks.retried") == 1
    assert metric_total("kit.tasks.failed") == 0
    assert metric_total("kit.task.duration") == 5  # observations: 4 successes + 1 retry
    assert metric_total("kit.task.duration", **{"task.outcome": "retry"}) == 1
    assert metric_total("kit.task.queue_wait") == 5
    retried = receiver.latest("kit.tasks.retried")
    assert {p.attributes["exception.type"] for p in retried.values()} == {"TransientError"}

    # The conventions' metrics: every message (the retry's too), every delivery.
    eventually(lambda: metric_total("messaging.process.duration") >= 5, 30)
    assert metric_total("messaging.client.sent.messages") == 5
    assert metric_total("messaging.client.consumed.messages") == 5
    assert metric_total("messaging.process.duration") == 5
    assert metric_total("messaging.process.duration", **{"error.type": "TransientError"}) == 1
    assert metric_total("messaging.client.operation.duration") == 5
    assert metric_total("messaging.client.sent.messages", **{"messaging.destination.name": "low"})
    for point in receiver.latest("messaging.client.consumed.messages").values():
        assert point.attributes["messaging.system"] == "redis"
        assert point.attributes["messaging.operation.name"] == "process"

    # Exemplars: a duration and a queue-wait observation lead to this very trace.
    for name in ("kit.task.duration", "kit.task.queue_wait"):
        traces = {
            t for p in receiver.metric_points() if p.name == name for t in p.exemplar_trace_ids
        }
        assert request_span.trace_id in traces, name

    # Log records over OTLP (OTEL_LOGS_EXPORTER=otlp), each task's with its trace and span.
    run_ids = {span.span_id for span in processes}

    def task_logs() -> list[Any]:
        return [r for r in receiver.log_records() if r.span_id in run_ids]

    eventually(lambda: len({r.span_id for r in task_logs()}) >= 5, 30)
    for record in task_logs():
        assert record.trace_id == request_span.trace_id
        assert "@example.com" not in str(record.body)


@pytest.mark.e2e
def test_semconv_opt_in_messaging_names_spans_by_the_conventions_and_drops_old_attributes(
    receiver: OTLPReceiver, start_worker: Any
) -> None:
    from project import app

    env = telemetry_env(
        receiver,
        KIT_IMPORTS="tests.support.tasks,examples.signup_tasks",
        OTEL_SEMCONV_STABILITY_OPT_IN="http,messaging",
    )
    worker = start_worker(concurrency=1, env=env)
    flask = ExampleServer("examples.flask_app", env)
    try:
        status, body = flask.post("/signup", {"email": EMAIL})
        assert status == 202
        assert app.AsyncResult(body["workflow_id"]).get(timeout=60).startswith("trial:")
    finally:
        flask.stop()
        worker.stop()
    spans = receiver.wait_for_spans(
        lambda spans: (
            len([s for s in spans if s.kind == CONSUMER]) >= 4
            and len([s for s in spans if s.kind == PRODUCER]) >= 4
        )
    )
    messaging = [s for s in spans if s.kind in (PRODUCER, CONSUMER)]
    for span in messaging:
        _assert_messaging(span)
        operation = "send" if span.kind == PRODUCER else "process"
        assert span.name == f"{operation} {span.attributes['messaging.destination.name']}"
        assert not {"messaging.destination", "messaging.destination_kind"} & set(span.attributes)
    assert {s.name for s in messaging} >= {"send default", "process default", "process low"}
