"""The shortcuts an attempt's span takes give what the long way gives: the shared attributes
worked out once per kind of attempt, its own attributes, the default sampler's decision for a
sampled producer, and the kit's own ``put_attribute``."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from celery.app.task import Context as RequestContext
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace import set_span_in_context as in_context

from project.telemetry.attempts import (
    celery_attributes,
    own_attributes,
    profile_for,
    request_values,
)
from project.telemetry.breaker import BreakerSampler, BreakerSpanExporter
from project.telemetry.messaging import OLD_ATTRIBUTES
from project.telemetry.spans import ConsumerSpan, start_consumer_span

GROUP = "default,low"
NONE: frozenset[str] = frozenset()


@pytest.fixture(autouse=True)
def _sdk_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite turns the SDK off for the processes it starts; these providers need it on."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")


def _profile(request: RequestContext, omit: frozenset[str] = NONE, rename: bool = False) -> Any:
    return profile_for("tests.add", request_values(request), GROUP, omit, rename)


def _request(**extra: Any) -> RequestContext:
    task_id = str(uuid.uuid4())
    return RequestContext(
        {
            "id": task_id,
            "correlation_id": task_id,
            "delivery_info": {"exchange": "", "routing_key": "default", "priority": 3},
            "reply_to": "505d1cad-0bcc-3ad1-aa6e-7ed9c097afae",
            "hostname": "celery@worker",
            "origin": "gen42@web",
            "timelimit": [360, 300],  # a list, as JSON decodes it
            "retries": 0,
            **extra,
        }
    )


def _tracer(exporter: InMemorySpanExporter, sampler: Any = None) -> Any:
    provider = TracerProvider(sampler=sampler or ALWAYS_ON)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("tests")


def _producer(
    trace_state: TraceState | None = None, sampled: bool = True
) -> tuple[Any, SpanContext]:
    """A producer's context as the message carries it, and its span's context."""
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    parent = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, flags, trace_state
    )
    return in_context(NonRecordingSpan(parent)), parent


def test_attempts_of_one_kind_share_one_profile() -> None:
    first = _profile(_request())
    second = _profile(_request())
    assert first is second


def test_an_attempt_that_differs_in_a_shared_value_has_its_own_profile() -> None:
    first = _profile(_request())
    retried = _profile(_request(retries=2))
    assert retried is not first
    assert (retried.shared["task.retry_count"], retried.shared["task.attempt"]) == (2, 3)
    assert (first.shared["task.retry_count"], first.shared["task.attempt"]) == (0, 1)


def test_the_shared_attributes_are_the_stock_ones_with_the_kits() -> None:
    request = _request()
    profile = _profile(request)
    stock: dict[str, Any] = {}
    celery_attributes(request, stock, {})
    assert {k: v for k, v in profile.shared.items() if k in stock} == stock
    assert profile.shared["messaging.destination.name"] == "default"
    assert profile.shared["messaging.consumer.group.name"] == GROUP
    assert profile.shared["celery.timelimit"] == (360, 300)
    assert (profile.span_name, profile.queue) == ("run/tests.add", "default")


def test_a_request_value_the_key_cannot_hold_gets_a_profile_of_its_own() -> None:
    unhashable = _request(compression=["zlib"])  # no message carries this; nothing breaks
    profile = _profile(unhashable)
    again = _profile(unhashable)
    assert profile is not again
    assert profile.shared == again.shared
    assert profile.shared["celery.compression"] == ("zlib",)


def test_under_the_new_conventions_the_profile_names_the_span_by_its_queue() -> None:
    profile = _profile(_request(), OLD_ATTRIBUTES, True)
    assert profile.span_name == "process default"
    assert OLD_ATTRIBUTES.isdisjoint(profile.shared)


def test_own_attributes_are_what_the_stock_instrumentation_sets_per_message() -> None:
    request = _request(eta="2026-12-01T10:00:00+00:00", expires="2026-12-01T11:00:00+00:00")
    task_id = str(request.id)
    expected: dict[str, Any] = {"task.id": task_id, "messaging.message.id": task_id}
    celery_attributes(request, {}, expected)
    mine = own_attributes(task_id, request_values(request), NONE)
    assert list(mine.items()) == list(expected.items())  # the same values, in the same order


def test_the_default_samplers_decision_for_a_sampled_producer_is_the_samplers_own() -> None:
    exporter = InMemorySpanExporter()
    sampler = BreakerSampler(ParentBased(ALWAYS_ON), BreakerSpanExporter(exporter))
    tracer = _tracer(exporter, sampler)
    parent, parent_span = _producer(TraceState([("vendor", "x1")]))
    mine = start_consumer_span(
        tracer, "run/tests.add", parent, parent_span, {"task.name": "tests.add"}
    )
    stock = tracer.start_span("run/tests.add", context=parent, attributes={"task.name": "x"})
    assert isinstance(mine, ConsumerSpan)
    ours, theirs = mine.get_span_context(), stock.get_span_context()
    assert (ours.trace_id, ours.trace_flags, ours.trace_state) == (
        theirs.trace_id,
        theirs.trace_flags,
        theirs.trace_state,
    )


def test_an_open_breaker_still_drops_an_attempt_of_a_sampled_producer() -> None:
    exporter = InMemorySpanExporter()
    breaking = BreakerSpanExporter(exporter, cool_down=60.0)
    breaking.breaker.record(False)  # an export failed: open for a minute
    tracer = _tracer(exporter, BreakerSampler(ParentBased(ALWAYS_ON), breaking))
    span = start_consumer_span(tracer, "run/x", *_producer(), {"task.name": "tests.add"})
    assert not span.is_recording()


def test_an_unsampled_producer_leaves_the_attempt_unsampled() -> None:
    exporter = InMemorySpanExporter()
    sampler = BreakerSampler(ParentBased(ALWAYS_ON), BreakerSpanExporter(exporter))
    tracer = _tracer(exporter, sampler)
    span = start_consumer_span(tracer, "run/x", *_producer(sampled=False), {"task.name": "x"})
    assert not span.is_recording()


def _span(attributes: dict[str, Any]) -> ConsumerSpan:
    span = start_consumer_span(_tracer(InMemorySpanExporter()), "run/x", *_producer(), attributes)
    assert isinstance(span, ConsumerSpan)
    return span


def test_put_attribute_adds_as_set_attribute_does() -> None:
    mine, theirs = _span({"a": "1", "b": "2"}), _span({"a": "1", "b": "2"})
    mine.put_attribute("a", "again")  # a value set again goes last
    mine.put_attribute("task.outcome", "success")
    theirs.set_attribute("a", "again")
    theirs.set_attribute("task.outcome", "success")
    assert list(mine.attributes.items()) == list(theirs.attributes.items())


def test_put_attribute_on_an_ended_span_changes_nothing() -> None:
    span = _span({"a": "1"})
    span.end()
    span.put_attribute("task.outcome", "success")
    assert dict(span.attributes) == {"a": "1"}


def test_put_attribute_of_a_shared_key_gives_up_the_shared_block() -> None:
    """The exporter encodes the shared block once; a span that sets one of its keys again
    must be encoded whole."""
    profile = _profile(_request())
    assert profile.static is not None
    tracer = _tracer(InMemorySpanExporter())
    shared = dict(profile.shared)
    span = start_consumer_span(tracer, "run/x", *_producer(), shared, profile.static)
    assert isinstance(span, ConsumerSpan)
    span.put_attribute("task.outcome", "success")
    assert span.static_attributes is profile.static
    span.put_attribute("task.name", "renamed")
    assert span.static_attributes is None


def test_the_span_attributes_have_every_field_the_sdks_constructor_sets() -> None:
    """ConsumerSpan builds its BoundedAttributes without the constructor: an SDK release that
    adds a field fails here."""
    from opentelemetry.attributes import BoundedAttributes

    span = _span({"a": "1"})
    assert set(vars(BoundedAttributes(10, {"a": "1"}, immutable=False))) == set(
        vars(span._attributes)
    )


class _Watching(SimpleSpanProcessor):
    """A processor whose start and ending hooks do something: they must still be called."""

    def __init__(self) -> None:
        super().__init__(InMemorySpanExporter())
        self.seen: list[str] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.seen.append("start")

    def _on_ending(self, span: Any) -> None:
        self.seen.append("ending")


def test_every_processor_hook_that_does_something_is_called_in_order() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_ON)
    provider.add_span_processor(SimpleSpanProcessor(exporter))  # empty on_start: skipped
    tracer: Any = provider.get_tracer("tests")
    start_consumer_span(tracer, "run/x", *_producer(), {"a": "1"}).end()
    watching = _Watching()
    provider.add_span_processor(watching)  # added later: the next span calls it too
    start_consumer_span(tracer, "run/x", *_producer(), {"a": "1"}).end()
    assert watching.seen == ["start", "ending"]
    assert len(exporter.get_finished_spans()) == 2
    assert len(watching.span_exporter.get_finished_spans()) == 1  # type: ignore[attr-defined]
