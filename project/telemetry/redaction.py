"""Personal data and secrets never leave the process, in a span or in a log line.

Span attributes, event attributes (an exception's message is one) and status descriptions are
scanned as spans are exported; log records are redacted as they are made (the record factory of
:mod:`project.telemetry.logs`), before any handler (the console, OTLP) sees them. Celery logs
task return values and error messages, and error messages often quote arguments
("550 <bob@example.com>: no such user", "cannot connect to redis://app:s3cret@cache").

Recognised: e-mail addresses, credentials in URLs (``scheme://user:secret@``), bearer tokens,
``password=…``/``token=…`` pairs, and card-like digit runs (13 to 19 digits passing the Luhn
check, so ids and timestamps are left alone).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

__all__ = [
    "REDACTED_CARD",
    "REDACTED_EMAIL",
    "REDACTED_SECRET",
    "RedactingSpanExporter",
    "redact_text",
]

REDACTED_EMAIL = "<email>"
REDACTED_SECRET = "<secret>"
REDACTED_CARD = "<card>"
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@:]*:[^/\s@]*@")
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_PAIR = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?token)"
    r"(\s*[=:]\s*|\"\s*:\s*\"|'\s*:\s*')[^\s&,;'\"]+"
)
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w])")
# One pass decides whether a text needs any of the substitutions (most need none).
_SUSPECT = re.compile(r"@|(?i:bearer|basic|pass|pwd|secret|token|key)|\d(?:[ -]?\d){12}")


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = ord(char) - 48
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return REDACTED_CARD if _luhn(digits) else match.group(0)


def redact_text(text: str) -> str:
    """``text`` with every recognised secret replaced (``text`` itself when there is none)."""
    if not _SUSPECT.search(text):
        return text
    text = _URL_CREDENTIALS.sub(rf"\g<scheme>{REDACTED_SECRET}@", text)
    text = _EMAIL.sub(REDACTED_EMAIL, text)
    text = _BEARER.sub(rf"\1 {REDACTED_SECRET}", text)
    text = _PAIR.sub(rf"\1\2{REDACTED_SECRET}", text)
    return _CARD.sub(_card, text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return tuple(_redact_value(v) for v in value)
    return value


def _redact_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key: _redact_value(value) for key, value in (attributes or {}).items()}


def _suspect(value: Any) -> bool:
    if isinstance(value, str):
        return _SUSPECT.search(value) is not None
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return any(_suspect(v) for v in value)
    return False


def _needs_redaction(span: ReadableSpan) -> bool:
    def suspect(attributes: Mapping[str, Any] | None) -> bool:
        return any(_suspect(v) for v in (attributes or {}).values())

    return (
        suspect(span.attributes)
        or any(suspect(event.attributes) for event in span.events)
        or _suspect(span.status.description or "")
    )


def redact_span(span: ReadableSpan, drop: frozenset[str] = frozenset()) -> ReadableSpan:
    """The span itself when clean (the common case costs one scan), else a redacted copy.
    ``drop``: attribute names left out of the copy (old semantic conventions)."""
    dropping = bool(drop) and any(key in drop for key in span.attributes or {})
    if not dropping and not _needs_redaction(span):
        return span
    attributes = {k: v for k, v in (span.attributes or {}).items() if k not in drop}
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_redact_attributes(attributes),
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

    def __init__(self, inner: SpanExporter, drop: frozenset[str] = frozenset()) -> None:
        self.inner = inner
        self.drop = drop

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([redact_span(span, self.drop) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))
