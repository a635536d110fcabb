"""The exporters' circuit breaker: after a failed export, nothing is sent for the cool-down;
then exports resume by themselves."""

from __future__ import annotations

import random
import time

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext

from project.telemetry.breaker import BreakerSpanExporter
from tests.support.otlp import OTLPReceiver
from tests.support.polling import eventually


def _span(name: str) -> ReadableSpan:
    context = SpanContext(random.getrandbits(128), random.getrandbits(64), is_remote=False)
    now = time.time_ns()
    return ReadableSpan(name=name, context=context, start_time=now, end_time=now + 1000)


def test_exports_pause_after_a_failure_and_resume_after_the_cool_down() -> None:
    receiver = OTLPReceiver().start()
    port = receiver.port
    exporter = BreakerSpanExporter(
        OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}", timeout=2), cool_down=1.0
    )
    assert exporter.export([_span("first")]) == SpanExportResult.SUCCESS
    receiver.stop()
    assert exporter.export([_span("lost")]) == SpanExportResult.FAILURE

    back = OTLPReceiver(port=port).start()
    try:
        # The collector is back, but the breaker is open: this one is dropped unsent.
        assert exporter.export([_span("dropped")]) == SpanExportResult.FAILURE
        eventually(lambda: exporter.breaker.closed(), 5)
        assert exporter.export([_span("resumed")]) == SpanExportResult.SUCCESS
        assert [s.name for s in back.spans] == ["resumed"]
    finally:
        back.stop()
        exporter.shutdown()


def test_no_spans_are_recorded_while_the_breaker_is_open(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

    from project.telemetry.breaker import BreakerSampler

    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")  # the suite turns the SDK off
    exporter = BreakerSpanExporter(
        OTLPSpanExporter(endpoint="http://127.0.0.1:9", timeout=1), cool_down=30.0
    )
    sampler = BreakerSampler(ParentBased(ALWAYS_ON), exporter)
    tracer = TracerProvider(sampler=sampler).get_tracer("t")
    with tracer.start_as_current_span("collector up") as span:
        assert span.is_recording()
    assert exporter.export([_span("refused")]) == SpanExportResult.FAILURE  # nothing listens
    with tracer.start_as_current_span("collector down") as parent:
        assert not parent.is_recording()  # neither made, filled nor queued for a dead collector
        with tracer.start_as_current_span("child") as child:
            assert not child.is_recording()
    exporter.breaker.record(ok=True)  # the collector answered again
    with tracer.start_as_current_span("back") as span:
        assert span.is_recording()
    exporter.shutdown()
