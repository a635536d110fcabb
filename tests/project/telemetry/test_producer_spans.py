"""The span the kit makes for each publish is the stock instrumentation's span (name, kind,
scope, parent, every attribute and value) and its context is what the message carries.

Both are made the same way here: a real publish through the kit's app (its direct path and
Celery's) into the suite's Redis, inside a caller's span, once with the stock receivers and once
with the kit's, into an in-memory exporter."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, StatusCode
from redis.exceptions import ConnectionError as RedisConnectionError

from project import app
from project.broker.publish import Publishing
from project.lifecycle import celery_hooks
from project.telemetry.producer import ProducerTracing
from tests.support.tasks import add

CALLER = "web request"


@pytest.fixture(autouse=True)
def _sdk_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite turns the SDK off for the processes it starts; this provider needs it on."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")


@pytest.fixture
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter, CeleryInstrumentor]]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=ALWAYS_ON)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    celery_hooks.move_publish_receiver_last()
    try:
        yield tracer_provider, exporter, instrumentor
    finally:
        instrumentor.uninstrument()


def _published(redis: Any, task_id: str) -> dict[str, Any]:
    for key in redis.keys("*"):
        if redis.type(key) == "list" and not key.startswith("kit:"):
            for raw in redis.lrange(key, 0, -1):
                message: dict[str, Any] = json.loads(raw)
                if message["headers"]["id"] == task_id:
                    return message
    raise AssertionError(f"{task_id} was not published")


@contextmanager
def _kit_receivers(
    provider: tuple[TracerProvider, InMemorySpanExporter, CeleryInstrumentor],
) -> Iterator[ProducerTracing]:
    """The kit's publish receivers in place of the stock ones, for the block."""
    tracer_provider, _, instrumentor = provider
    producer = ProducerTracing(instrumentor, tracer_provider)
    producer.instrument()
    celery_hooks.move_publish_receiver_last()
    try:
        yield producer
    finally:
        producer.uninstrument()
        celery_hooks.move_publish_receiver_last()


def _publish(
    kit: bool,
    provider: tuple[TracerProvider, InMemorySpanExporter, CeleryInstrumentor],
    publish: Callable[[str], Any],
    task_id: str,
) -> tuple[ReadableSpan, ReadableSpan]:
    """(the publish's span, the caller's span)."""
    tracer_provider, exporter, _ = provider
    exporter.clear()
    with (
        _kit_receivers(provider) if kit else nullcontext(),
        tracer_provider.get_tracer("web").start_as_current_span(CALLER),
    ):
        publish(task_id)
    spans = exporter.get_finished_spans()
    (sent,) = [s for s in spans if s.kind == SpanKind.PRODUCER]
    (caller,) = [s for s in spans if s.name == CALLER]
    return sent, caller


_CALLS: dict[str, Callable[[str], Any]] = {
    "direct": lambda task_id: add.apply_async((1, 2), task_id=task_id),
    "by-name": lambda task_id: app.send_task("tests.add", (1, 2), task_id=task_id),
    "celerys-path": lambda task_id: add.apply_async((1, 2), task_id=task_id, expires=60),
    "unknown-task": lambda task_id: app.send_task("elsewhere.only", (1,), task_id=task_id),
}


@pytest.mark.parametrize("call", list(_CALLS))
def test_the_kits_publish_span_is_the_stock_one(
    redis: Any, provider: tuple[TracerProvider, InMemorySpanExporter, CeleryInstrumentor], call: str
) -> None:
    kit, kit_caller = _publish(True, provider, _CALLS[call], "id-kit")
    stock, stock_caller = _publish(False, provider, _CALLS[call], "id-stock")

    assert kit.name == stock.name and kit.kind == stock.kind == SpanKind.PRODUCER
    assert kit.instrumentation_scope == stock.instrumentation_scope
    assert kit.parent is not None and kit.parent.span_id == kit_caller.context.span_id
    assert stock.parent is not None and stock.parent.span_id == stock_caller.context.span_id
    kit_attributes, stock_attributes = dict(kit.attributes or {}), dict(stock.attributes or {})
    assert kit_attributes.pop("messaging.message.id") == "id-kit"
    assert stock_attributes.pop("messaging.message.id") == "id-stock"
    assert list(kit_attributes.items()) == list(stock_attributes.items())
    assert kit.end_time is not None and kit.status == stock.status


@pytest.mark.parametrize("call", list(_CALLS))
def test_the_message_carries_the_publish_spans_context(
    redis: Any, provider: tuple[TracerProvider, InMemorySpanExporter, CeleryInstrumentor], call: str
) -> None:
    sent, _ = _publish(True, provider, _CALLS[call], "id-carried")
    traceparent = _published(redis, "id-carried")["headers"]["traceparent"]
    context = sent.context
    flags = int(context.trace_flags)
    assert traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"
    assert flags & 1  # sampled


def test_uninstrument_brings_the_stock_receivers_back(
    redis: Any, provider: tuple[TracerProvider, InMemorySpanExporter, CeleryInstrumentor]
) -> None:
    tracer_provider, exporter, instrumentor = provider
    producer = ProducerTracing(instrumentor, tracer_provider)
    producer.instrument()
    producer.instrument()  # idempotent
    producer.uninstrument()
    producer.uninstrument()
    from celery import signals

    receivers = signals.before_task_publish._live_receivers("tests.add")
    assert instrumentor._trace_before_publish in receivers
    assert producer._before not in receivers
    add.apply_async((1, 2), task_id="id-after")
    assert [s.name for s in exporter.get_finished_spans()] == ["apply_async/tests.add"]


def test_a_publish_made_again_after_a_lost_round_trip_has_one_span_and_restores_the_callers(
    redis: Any,
    provider: tuple[TracerProvider, InMemorySpanExporter, CeleryInstrumentor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The direct path's round trip fails, Celery's path publishes the same task again: the
    publish signals fire twice for one message."""

    def lost(self: Any, *args: Any) -> None:
        raise RedisConnectionError("Connection reset by peer")

    monkeypatch.setattr(Publishing, "publish_plain", lost)
    tracer_provider, exporter, _ = provider
    with (
        _kit_receivers(provider) as producer,
        tracer_provider.get_tracer("web").start_as_current_span(CALLER) as caller,
    ):
        add.apply_async((1, 2), task_id="id-again")
        assert trace.get_current_span() is caller

    (sent,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.PRODUCER]
    assert sent.parent is not None and sent.parent.span_id == caller.get_span_context().span_id
    traceparent = _published(redis, "id-again")["headers"]["traceparent"]
    assert traceparent.split("-")[2] == f"{sent.context.span_id:016x}"
    assert not producer._open


def test_a_publish_that_raised_is_ended_as_an_error_when_its_thread_publishes_again(
    redis: Any,
    provider: tuple[TracerProvider, InMemorySpanExporter, CeleryInstrumentor],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: Any, *args: Any) -> None:
        raise RuntimeError("not a connection error: raised to the caller")

    tracer_provider, exporter, _ = provider
    with (
        _kit_receivers(provider) as producer,
        tracer_provider.get_tracer("web").start_as_current_span(CALLER) as caller,
    ):
        with monkeypatch.context() as patch:
            patch.setattr(Publishing, "publish_plain", broken)
            with pytest.raises(RuntimeError):
                add.apply_async((1, 2), task_id="id-raised")
        add.apply_async((1, 2), task_id="id-next")
        assert trace.get_current_span() is caller

    spans = {
        s.attributes["messaging.message.id"]: s
        for s in exporter.get_finished_spans()
        if s.kind == SpanKind.PRODUCER and s.attributes
    }
    assert set(spans) == {"id-raised", "id-next"}
    assert spans["id-raised"].status.status_code is StatusCode.ERROR
    assert spans["id-next"].status.status_code is StatusCode.UNSET
    for span in spans.values():
        assert span.parent is not None and span.parent.span_id == caller.get_span_context().span_id
    assert not producer._open
