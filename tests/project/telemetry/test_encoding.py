"""The kit's span encoder writes exactly the request the OTLP exporter's own encoder writes,
for spans of every shape, however often their attribute values repeat."""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import (
    encode_spans as upstream_encode_spans,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from project.telemetry.encoding import encode_spans


@pytest.fixture(autouse=True)
def _sdk_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite turns the SDK off for the processes it starts; these providers need it on."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")


def _spans() -> list[ReadableSpan]:
    spans: list[ReadableSpan] = []
    for service in ("worker", "producer"):
        provider = TracerProvider(
            resource=Resource.create({"service.name": service, "process.pid": 7}),
            sampler=ALWAYS_ON,
        )
        stock = provider.get_tracer("opentelemetry.instrumentation.celery", "0.66b1")
        kit = provider.get_tracer("project")
        for attempt in range(3):  # repeated values: the second and third come from the cache
            with stock.start_as_current_span("apply_async/tests.add", kind=SpanKind.PRODUCER) as p:
                p.set_attributes({"celery.action": "apply_async", "task.attempt": attempt})
            with stock.start_as_current_span(
                "run/tests.add", kind=SpanKind.CONSUMER, links=[Link(p.get_span_context())]
            ) as run:
                run.set_attributes(
                    {
                        "task.id": f"id-{attempt}",
                        "messaging.message.id": f"id-{attempt}",
                        "task.priority": 0,
                        "task.retried": False,
                        "task.ratio": 0.5,
                        "celery.timelimit": ("", "30"),
                        "task.long": "x" * 1000,
                    }
                )
                run.add_event("task.retry", {"task.attempt": attempt + 1})
                run.set_status(Status(StatusCode.ERROR, "retrying after KeyError"))
                with kit.start_as_current_span("workflow/chain") as child:
                    child.set_attribute("workflow.id", "w-1")
            spans += [p, run, child]  # type: ignore[list-item]
    return spans


def test_the_request_is_the_upstream_encoders_to_the_byte() -> None:
    spans = _spans()
    request = encode_spans(spans)
    assert request.SerializeToString() == upstream_encode_spans(spans).SerializeToString()
    assert [len(r.scope_spans) for r in request.resource_spans] == [2, 2]  # stock and kit
    assert sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans) == 18


def test_equal_values_of_different_types_stay_apart() -> None:
    provider = TracerProvider(sampler=ALWAYS_ON)
    with provider.get_tracer("tests").start_as_current_span("a") as first:
        first.set_attributes({"v": True})
    with provider.get_tracer("tests").start_as_current_span("b") as second:
        second.set_attributes({"v": 1})
    spans: list[ReadableSpan] = [first, second]  # type: ignore[list-item]
    encoded = encode_spans(spans).resource_spans[0].scope_spans[0].spans
    assert [s.attributes[0].value.WhichOneof("value") for s in encoded] == [
        "bool_value",
        "int_value",
    ]
