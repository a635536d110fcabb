"""The span the kit makes for each task attempt is the stock instrumentation's span (name,
kind, scope, parent, every ``celery.*`` attribute and value, a failure's status and exception,
a retry's reason) plus the kit's attributes, and it exports as any SDK span does.

Both are made the same way here: Celery's own task tracer runs a real task of the kit's app
with a request carrying a producer's trace context, once with the stock receivers and once
with the kit's, into an in-memory exporter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery.app.trace import build_tracer
from celery.exceptions import Retry
from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
    encode_spans as upstream_encode_spans,
)
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace import set_span_in_context as in_context

from project import app
from project.telemetry.consumer import ConsumerTracing
from project.telemetry.encoding import encode_spans
from project.telemetry.messaging import OLD_ATTRIBUTES
from project.telemetry.redaction import redact_span

PRODUCER = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, TraceFlags(1))


@app.task(name="tests.consumer_spans.ok", ignore_result=True, shared=False)
def ok(x: int) -> int:
    return x + 1


@app.task(name="tests.consumer_spans.boom", ignore_result=True, shared=False)
def boom() -> None:
    raise KeyError("missing")


@app.task(name="tests.consumer_spans.again", ignore_result=True, shared=False, bind=True)
def again(self: Any) -> None:
    raise Retry("later", exc=ValueError("flaky"))


@pytest.fixture(autouse=True)
def _sdk_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite turns the SDK off for the processes it starts; this provider needs it on."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")


@pytest.fixture
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=ALWAYS_ON)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = CeleryInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        yield tracer_provider, exporter
    finally:
        instrumentor.uninstrument()


def _request(task_id: str, **extra: Any) -> dict[str, Any]:
    headers: dict[str, str] = {}
    propagate.inject(headers, context=in_context(NonRecordingSpan(PRODUCER)))
    return {
        "id": task_id,
        "correlation_id": task_id,
        "delivery_info": {
            "exchange": "",
            "routing_key": "default",
            "priority": 5,
            "redelivered": False,
        },
        "reply_to": "505d1cad-0bcc-3ad1-aa6e-7ed9c097afae",
        "hostname": "celery@worker",
        "origin": "gen42@web",
        "timelimit": (360, 300),
        "retries": 0,
        **headers,
        **extra,
    }


def _run(task: Any, request: dict[str, Any], args: tuple[Any, ...] = ()) -> None:
    trace_task = build_tracer(task.name, task, app=app, propagate=False)
    trace_task(request["id"], args, {}, request)


def _span_of(
    kit: bool, provider: tuple[TracerProvider, InMemorySpanExporter], task: Any, **extra: Any
) -> ReadableSpan:
    tracer_provider, exporter = provider
    exporter.clear()
    consumer = ConsumerTracing(CeleryInstrumentor(), tracer_provider)
    if kit:
        consumer.instrument()
    try:
        _run(task, _request(str(uuid.uuid4()), **extra), (1,) if task is ok else ())
    finally:
        consumer.uninstrument()
    (span,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    return span


def _bytes(spans: list[ReadableSpan]) -> bytes:
    encoded: bytes = encode_spans(spans).SerializeToString()
    return encoded


def _comparable(span: ReadableSpan) -> dict[str, Any]:
    attributes = dict(span.attributes or {})
    task_id = attributes["messaging.message.id"]
    return {
        "name": span.name,
        "kind": span.kind,
        "scope": (span.instrumentation_scope.name, span.instrumentation_scope.version)
        if span.instrumentation_scope
        else None,
        "parent": span.parent,
        "trace": span.context.trace_id,
        "status": (span.status.status_code, span.status.description),
        "events": [e.name for e in span.events],
        # The ids differ between the two runs: compared by where they appear.
        "attributes": {k: ("<id>" if v == task_id else v) for k, v in attributes.items()},
    }


@pytest.mark.parametrize(
    ("task", "extra"),
    [
        (ok, {}),
        (ok, {"retries": 2, "eta": "2026-12-01T10:00:00+00:00"}),
        (ok, {"timelimit": (None, 30)}),
        (boom, {}),
        (again, {}),
    ],
    ids=["success", "retried-with-eta", "one-time-limit", "failure", "retry"],
)
def test_the_kit_span_is_the_stock_span_with_the_kits_attributes_added(
    provider: tuple[TracerProvider, InMemorySpanExporter], task: Any, extra: dict[str, Any]
) -> None:
    stock = _comparable(_span_of(False, provider, task, **extra))
    kit = _comparable(_span_of(True, provider, task, **extra))
    added = set(kit["attributes"]) - set(stock["attributes"])
    assert {k: kit["attributes"][k] for k in stock["attributes"]} == stock["attributes"]
    assert added == {
        "task.id",
        "task.name",
        "task.queue",
        "task.priority",
        "task.retry_count",
        "task.attempt",
        "messaging.operation.name",
        "messaging.operation.type",
        "messaging.system",
        "messaging.destination.name",
        "messaging.consumer.group.name",
    }
    for key in ("name", "kind", "scope", "parent", "status", "events"):
        assert kit[key] == stock[key], key
    assert kit["trace"] == stock["trace"] == PRODUCER.trace_id
    assert kit["parent"].span_id == PRODUCER.span_id


def test_the_kit_span_exports_to_the_byte_as_upstream_encodes_it(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    spans = [_span_of(True, provider, ok) for _ in range(3)]
    spans.append(_span_of(True, provider, boom))  # an exception event: the general path
    assert all(getattr(s, "static_attributes", None) is not None for s in spans[:3])
    clean = [redact_span(s) for s in spans]
    assert clean[:3] == spans[:3]  # nothing to redact: the spans themselves
    assert _bytes(clean) == upstream_encode_spans(clean).SerializeToString()


def test_a_shared_attribute_set_again_leaves_the_shared_block(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    from opentelemetry import trace

    seen: list[Any] = []

    @app.task(name="tests.consumer_spans.renames", ignore_result=True, shared=False)
    def renames() -> None:
        span = trace.get_current_span()
        seen.append(span.static_attributes)  # type: ignore[attr-defined]
        span.set_attribute("task.queue", "elsewhere")
        seen.append(span.static_attributes)  # type: ignore[attr-defined]

    span = _span_of(True, provider, renames)
    assert seen[0] is not None and seen[1] is None
    assert (span.attributes or {})["task.queue"] == "elsewhere"
    assert _bytes([span]) == upstream_encode_spans([span]).SerializeToString()


def test_an_id_with_an_address_is_redacted_though_the_rest_is_shared(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    tracer_provider, exporter = provider
    consumer = ConsumerTracing(CeleryInstrumentor(), tracer_provider)
    consumer.instrument()
    try:
        _run(ok, _request("signup-ada@example.com"), (1,))
    finally:
        consumer.uninstrument()
    (span,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    redacted = redact_span(span)
    assert "ada@example.com" not in str(dict(redacted.attributes or {}))
    assert (redacted.attributes or {})["task.name"] == "tests.consumer_spans.ok"


def test_under_the_new_conventions_the_old_names_are_never_set(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    tracer_provider, exporter = provider
    consumer = ConsumerTracing(CeleryInstrumentor(), tracer_provider, rename=True)
    consumer.instrument()
    try:
        _run(ok, _request(str(uuid.uuid4())), (1,))
    finally:
        consumer.uninstrument()
    (span,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert span.name == "process default"
    assert not OLD_ATTRIBUTES & set(span.attributes or {})


def test_uninstrument_gives_the_stock_receivers_back(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    tracer_provider, exporter = provider
    consumer = ConsumerTracing(CeleryInstrumentor(), tracer_provider)
    consumer.instrument()
    consumer.uninstrument()
    exporter.clear()
    _run(ok, _request(str(uuid.uuid4())), (1,))
    (span,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert "task.id" not in (span.attributes or {})  # the stock span: no kit attributes
    assert span.name == "run/tests.consumer_spans.ok"


class _BrokenMetrics:
    """Attempt metrics that fail at both ends: the span must not depend on them."""

    def begin(self, *args: Any) -> None:
        raise RuntimeError("begin")

    def end(self, *args: Any) -> None:
        raise RuntimeError("end")


def test_an_attempt_whose_metrics_fail_still_exports_its_span_and_leaves_no_context(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    from opentelemetry import trace

    tracer_provider, exporter = provider
    consumer = ConsumerTracing(CeleryInstrumentor(), tracer_provider, hooks=_BrokenMetrics())  # type: ignore[arg-type]
    consumer.instrument()
    try:
        exporter.clear()
        _run(ok, _request(str(uuid.uuid4())), (1,))
    finally:
        consumer.uninstrument()
    (span,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert span.attributes is not None and span.attributes["celery.state"] == "SUCCESS"
    assert not trace.get_current_span().get_span_context().is_valid  # detached


def test_the_kit_span_has_every_field_the_sdks_constructor_sets(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """ConsumerSpan replaces the SDK span's constructor: an SDK release that adds a field
    fails here, not in production."""
    tracer_provider, _ = provider
    stock = tracer_provider.get_tracer("tests").start_span("x", kind=SpanKind.CONSUMER)
    kit = _span_of(True, provider, ok)
    assert set(vars(stock)) <= set(vars(kit))


def test_a_value_a_request_does_not_hold_is_one_the_stock_instrumentation_skips() -> None:
    """celery_attributes reads a request's own values; the rest come from Context's class
    defaults, which must all be values the stock instrumentation leaves out."""
    from celery.app.task import Context

    from project.telemetry.attempts import _CONTEXT_KEYS

    defaults = {key: getattr(Context, key, None) for key, _ in _CONTEXT_KEYS}
    assert {key: v for key, v in defaults.items() if v not in (None, "", 0)} == {}
    assert getattr(Context, "retries", None) == 0  # the one 0: skipped as "no retries"


def _queued(spans: list[ReadableSpan], drop: frozenset[str] = frozenset()) -> list[Any]:
    """What the kit's span processor queues for ``spans`` (as it queues them, in order)."""
    from project.telemetry.span_export import EncodedSpanExporter, EncodingSpanProcessor

    processor = EncodingSpanProcessor(EncodedSpanExporter(drop=drop), drop)
    try:
        for span in spans:
            processor.on_end(span)
        return list(reversed(processor._batch_processor._queue))
    finally:
        processor.shutdown()  # type: ignore[no-untyped-call]


def _exported(queued: list[Any], drop: frozenset[str] = frozenset()) -> bytes:
    """The request the kit's exporter sends for what the processor queued."""
    from project.telemetry.encoding import assemble_request
    from project.telemetry.span_export import EncodedSpanExporter

    exporter = EncodedSpanExporter(drop=drop)
    try:
        return assemble_request(exporter._encoded(queued))
    finally:
        exporter.shutdown()


def test_an_attempt_span_is_queued_as_plain_values_and_others_as_spans(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    spans = [_span_of(True, provider, ok), _span_of(True, provider, boom)]
    queued = _queued(spans)
    # The attempt that succeeded: one tuple (the span's objects die with the attempt); the
    # one with an exception event: the span itself, for the general path.
    assert type(queued[0]) is tuple and queued[0][4] == spans[0].context.trace_id
    assert queued[1] is spans[1]


def test_what_is_queued_exports_as_upstream_encodes_the_redacted_spans(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    secret = "bob@example.com"
    spans = [
        _span_of(True, provider, ok),
        _span_of(True, provider, ok, correlation_id=secret),  # an own value to redact
        _span_of(True, provider, boom),
    ]
    expected = upstream_encode_spans([redact_span(s) for s in spans]).SerializeToString()
    exported = _exported(_queued(spans))
    assert exported == expected
    assert secret.encode() not in exported and b"<email>" in exported


def test_under_the_new_conventions_the_old_names_are_left_out_of_what_is_queued(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    spans = [_span_of(True, provider, ok), _span_of(True, provider, boom)]
    expected = upstream_encode_spans([redact_span(s, OLD_ATTRIBUTES) for s in spans])
    exported = _exported(_queued(spans, OLD_ATTRIBUTES), OLD_ATTRIBUTES)
    assert exported == expected.SerializeToString()
    assert b"messaging.destination\x12" not in exported  # the old name, as a key


def test_an_unsampled_span_is_not_queued(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    span = _span_of(True, provider, ok)
    unsampled = ReadableSpan(
        name=span.name,
        context=SpanContext(span.context.trace_id, span.context.span_id, False, TraceFlags(0)),
    )
    assert _queued([unsampled]) == []


def test_a_receiver_connected_while_the_kit_caches_receivers_is_still_called(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """The kit has Celery cache each per-attempt signal's receivers; Celery empties that
    cache on every connect, so a receiver connected between two attempts hears the second."""
    from celery import signals

    tracer_provider, exporter = provider
    consumer = ConsumerTracing(CeleryInstrumentor(), tracer_provider)
    consumer.instrument()
    heard: list[str] = []

    def listener(task_id: str | None = None, **_: Any) -> None:
        heard.append(str(task_id))

    try:
        _run(ok, _request("first"), (1,))  # fills the cache for this sender
        signals.task_prerun.connect(listener, weak=False)
        _run(ok, _request("second"), (1,))
    finally:
        signals.task_prerun.disconnect(listener)
        consumer.uninstrument()
    assert heard == ["second"]
    assert len([s for s in exporter.get_finished_spans() if s.kind == SpanKind.CONSUMER]) == 2


def test_uninstrument_gives_celery_its_uncached_signals_back(
    provider: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    from celery import signals

    tracer_provider, _ = provider
    consumer = ConsumerTracing(CeleryInstrumentor(), tracer_provider)
    consumer.instrument()
    _run(ok, _request(str(uuid.uuid4())), (1,))
    assert signals.task_prerun.use_caching and ok in signals.task_prerun.sender_receivers_cache
    consumer.uninstrument()
    for signal in (signals.task_prerun, signals.task_postrun):
        assert not signal.use_caching
        assert ok not in signal.sender_receivers_cache  # no task held by the cache
