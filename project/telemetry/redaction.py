"""Personal data never leaves the process in a span.

Attributes, event attributes (an exception's message is one) and status descriptions are scanned
as spans are exported; e-mail addresses are replaced. The kit's own hooks never record
arguments, but error messages often quote them ("550 <bob@example.com>: no such user").
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

__all__ = ["REDACTED_EMAIL", "RedactingSpanExporter", "redact_text"]

REDACTED_EMAIL = "<email>"
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def redact_text(text: str) -> str:
    return _EMAIL.sub(REDACTED_EMAIL, text) if "@" in text else text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return tuple(_redact_value(v) for v in value)
    return value


def _redact_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: _redact_value(value) for key, value in (attributes or {}).items()}


def _needs_redaction(span: ReadableSpan) -> bool:
    def has_at(attributes: Mapping[str, Any] | None) -> bool:
        return any("@" in str(v) for v in (attributes or {}).values())

    return (
        has_at(span.attributes)
        or any(has_at(event.attributes) for event in span.events)
        or "@" in (span.status.description or "")
    )


def redact_span(span: ReadableSpan) -> ReadableSpan:
    """The span itself when clean (the common case costs one scan), else a redacted copy."""
    if not _needs_redaction(span):
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_redact_attributes(span.attributes),
        events=[Event(e.name, _redact_attributes(e.attributes), e.timestamp) for e in span.events],
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code, redact_text(span.status.description or "") or None),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class RedactingSpanExporter(SpanExporter):
    """Wraps an exporter; every span passes through :func:`redact_span` first."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([redact_span(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))
