"""An attempt's lean span (the kit's export processor alone behind the tracer) exports what
the SDK-compatible span would: the same name, parent, attributes and bytes; anything the
lean path does not cover (a task setting its own attribute, a failure) turns it into that
span first, and an ended one is queued once.

Celery's own task tracer runs the kit's tasks in this process, the kit's receivers making
the span, the kit's processor queueing it for a capturing exporter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
    encode_spans as upstream_encode_spans,
)
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import SpanKind, StatusCode

from project import app
from project.telemetry.attempt_span import AttemptSpan
from project.telemetry.breaker import BreakerSampler, BreakerSpanExporter
from project.telemetry.consumer import ConsumerTracing
from project.telemetry.encoding import assemble_request, encode_record, encode_span
from project.telemetry.redaction import redact_span
from project.telemetry.span_export import EncodingSpanProcessor
from project.telemetry.spans import ConsumerSpan
from tests.project.telemetry.test_consumer_spans import PRODUCER, _request, _run, boom, ok


@app.task(name="tests.attempt_span.tagged", ignore_result=True, shared=False)
def tagged() -> None:
    trace.get_current_span().set_attribute("order.kind", "gift")


class _Capture(SpanExporter):
    """What the kit's processor hands its exporter, kept as it is."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.items.extend(spans)
        return SpanExportResult.SUCCESS


class _ProducerSpansOnly(SpanProcessor):
    """Like the kit's publish-duration processor: it looks at producer spans only, and says
    so, so an attempt's span may skip it."""

    ignores_consumer_spans = True

    def __init__(self) -> None:
        self.kinds: list[SpanKind] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.kinds.append(span.kind)


@pytest.fixture(autouse=True)
def _sdk_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")


@pytest.fixture
def kit_export() -> Iterator[tuple[TracerProvider, _Capture]]:
    """The production set-up over OTLP/gRPC, with a capturing exporter."""
    capture = _Capture()
    breaker = BreakerSpanExporter(capture)
    provider = TracerProvider(sampler=BreakerSampler(ParentBased(ALWAYS_ON), breaker))
    provider.add_span_processor(EncodingSpanProcessor(breaker))
    provider.add_span_processor(_ProducerSpansOnly())
    yield provider, capture
    provider.shutdown()


def _attempt(provider: TracerProvider, task: Any, request: dict[str, Any]) -> None:
    consumer = ConsumerTracing(CeleryInstrumentor(), provider)
    consumer.instrument()
    try:
        _run(task, request, (1,) if task is ok else ())
    finally:
        consumer.uninstrument()
    provider.force_flush()


def _received(item: Any) -> dict[str, Any]:
    """The attributes of what the collector receives for a queued item (an attempt record,
    a lean span or a span), through the exporter's encoding."""
    if type(item) is tuple:
        encoded = (item[0], item[1], encode_record(item))
    elif type(item) is AttemptSpan:
        encoded = item.encoded(frozenset())
    else:
        encoded = (item.resource, item.instrumentation_scope, encode_span(item))
    request = ExportTraceServiceRequest.FromString(assemble_request([encoded]))
    (span,) = request.resource_spans[0].scope_spans[0].spans
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}


def _exported(capture: _Capture) -> Any:
    (item,) = capture.items
    return item


def test_a_plain_attempt_is_queued_lean_and_encodes_as_the_sdk_span_would(
    kit_export: tuple[TracerProvider, _Capture],
) -> None:
    provider, capture = kit_export
    _attempt(provider, ok, _request(str(uuid.uuid4())))
    lean = _exported(capture)
    assert type(lean) is AttemptSpan
    full = lean.full()  # the same span as the SDK-compatible path makes it
    assert full.parent is not None and full.parent.is_remote
    assert (full.parent.trace_id, full.parent.span_id) == (PRODUCER.trace_id, PRODUCER.span_id)
    expected = upstream_encode_spans([redact_span(full)]).SerializeToString()
    assert assemble_request([lean.encoded(frozenset())]) == expected


def test_a_lean_attempt_whose_request_holds_a_state_encodes_as_the_sdk_span_would(
    kit_export: tuple[TracerProvider, _Capture],
) -> None:
    """A request's ``state`` is one of the shared attributes (``celery.state``), which the
    kit sets again as the attempt ends: the shared block no longer stands for the first
    attributes, and the encoding takes the full attribute dict."""
    provider, capture = kit_export
    _attempt(provider, ok, _request(str(uuid.uuid4()), state="RECEIVED"))
    lean = _exported(capture)
    assert type(lean) is AttemptSpan
    expected = upstream_encode_spans([redact_span(lean.full())]).SerializeToString()
    assert assemble_request([lean.encoded(frozenset())]) == expected
    assert _received(lean)["celery.state"] == "SUCCESS"


def test_the_lean_span_has_what_the_sdk_compatible_path_gives_the_same_attempt(
    kit_export: tuple[TracerProvider, _Capture],
) -> None:
    provider, capture = kit_export
    request = _request(str(uuid.uuid4()))
    _attempt(provider, ok, request)
    lean = _exported(capture).full()
    # A second processor behind the tracer: the kit's processor is no longer alone, so the
    # same attempt takes the ConsumerSpan path.
    other = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(other))
    _attempt(provider, ok, request)
    (sdk,) = [s for s in other.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert type(sdk) is ConsumerSpan
    assert (lean.name, lean.kind, lean.parent) == (sdk.name, sdk.kind, sdk.parent)
    assert dict(lean.attributes or {}) == dict(sdk.attributes or {})
    assert list(lean.attributes or {}) == list(sdk.attributes or {})  # the same order
    assert lean.attributes is not None and lean.attributes["celery.state"] == "SUCCESS"


def test_a_task_that_sets_its_own_attribute_exports_the_full_span_with_it(
    kit_export: tuple[TracerProvider, _Capture],
) -> None:
    provider, capture = kit_export
    _attempt(provider, tagged, _request(str(uuid.uuid4())))
    item = _exported(capture)
    assert type(item) is not AttemptSpan
    attributes = _received(item)
    assert attributes["order.kind"] == "gift" and attributes["celery.state"] == "SUCCESS"


def test_a_failed_attempt_keeps_its_error_status_and_exception(
    kit_export: tuple[TracerProvider, _Capture],
) -> None:
    provider, capture = kit_export
    _attempt(provider, boom, _request(str(uuid.uuid4())))
    span = _exported(capture)
    assert isinstance(span, ConsumerSpan)  # an event: queued as the span itself
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]
    assert _received(span)["celery.state"] == "FAILURE"


def test_an_ended_lean_span_refuses_changes_and_is_queued_once(
    kit_export: tuple[TracerProvider, _Capture],
) -> None:
    provider, capture = kit_export
    _attempt(provider, ok, _request(str(uuid.uuid4())))
    lean = _exported(capture)
    lean.set_attribute("late", "value")
    lean.end()
    provider.force_flush()
    assert capture.items == [lean]
    assert "late" not in (lean.full().attributes or {})
    assert not lean.is_recording()


def test_while_the_collector_is_failing_no_attempt_is_recorded(
    kit_export: tuple[TracerProvider, _Capture],
) -> None:
    provider, capture = kit_export
    sampler = provider.sampler
    assert isinstance(sampler, BreakerSampler)
    sampler.breaker.record(False)  # an export just failed: the breaker cools down
    _attempt(provider, ok, _request(str(uuid.uuid4())))
    assert capture.items == []


def test_an_attempt_under_an_unsampled_parent_is_not_recorded(
    kit_export: tuple[TracerProvider, _Capture],
) -> None:
    provider, capture = kit_export
    request = _request(str(uuid.uuid4()))
    request["traceparent"] = request["traceparent"][:-2] + "00"  # the producer did not sample
    _attempt(provider, ok, request)
    assert capture.items == []


def test_a_span_attribute_limit_below_the_sdks_default_keeps_the_sdks_own_dropping() -> None:
    """The lean path never drops an attribute; under a lower limit (OTEL_SPAN_ATTRIBUTE_COUNT_
    LIMIT, SpanLimits) the attempt's span is the SDK's, which keeps the first ten."""
    capture = _Capture()
    breaker = BreakerSpanExporter(capture)
    provider = TracerProvider(
        sampler=BreakerSampler(ParentBased(ALWAYS_ON), breaker),
        span_limits=SpanLimits(max_span_attributes=10),
    )
    provider.add_span_processor(EncodingSpanProcessor(breaker))
    try:
        _attempt(provider, ok, _request(str(uuid.uuid4())))
    finally:
        provider.shutdown()
    span = _exported(capture)
    assert type(span) is not AttemptSpan
    assert len(span.attributes) == 10 and span.dropped_attributes > 0


def test_the_lean_span_keeps_every_request_value_the_attributes_are_made_from() -> None:
    """A request value the attributes read but the lean span did not keep would be missing
    from its span and present on the SDK-compatible one."""
    from project.telemetry.attempts import _CONTEXT_KEYS, OWN_KEYS, REQUEST_KEYS

    assert {key for key, _ in _CONTEXT_KEYS} | OWN_KEYS <= set(REQUEST_KEYS)
