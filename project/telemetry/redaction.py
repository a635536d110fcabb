"""Personal data and secrets never leave the process, in a span or in a log line.

Span attributes, event attributes (an exception's message is one) and status descriptions are
scanned as spans are exported, in the export thread (as
:class:`~project.telemetry.span_export.EncodedSpanExporter` encodes a batch; over OTLP/HTTP,
by :class:`RedactingSpanExporter`); log records are redacted as they are made (the record
factory of :mod:`project.telemetry.logs`), before any handler (the console, OTLP) sees them.
Celery logs task return values and error messages, and error messages often quote arguments
("550 <bob@example.com>: no such user", "cannot connect to redis://app:s3cret@cache").

Recognised: e-mail addresses, credentials in URLs (``scheme://user:secret@``), bearer tokens,
``password=…``/``token=…`` pairs, and card-like digit runs (13 to 19 digits passing the Luhn
check, so ids and timestamps are left alone).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import islice
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from project.telemetry.caches import remember

__all__ = [
    "REDACTED_CARD",
    "REDACTED_EMAIL",
    "REDACTED_SECRET",
    "RedactingSpanExporter",
    "is_clean",
    "redact_text",
    "redact_value",
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
_KEYWORDS = ("bearer", "basic", "pass", "pwd", "secret", "token", "key")
# Thirteen digits, single spaces or hyphens between them allowed: the shortest card.
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){12}")
# Thirteen digits in a row once every space and hyphen is gone: true of every text the digit
# run is found in, and a scan a dozen times cheaper, since sre tries the run's group at every
# position (a task id, new in every span, is 36 characters of hex and hyphens).
_DIGITS = re.compile(r"\d{13}")
_MAX_CACHED_LENGTH = 256  # longer values (messages, tracebacks) are scanned each time
#: value -> its redacted form; written by the export thread, and by a task's thread when an
#: attempt's shared attributes are first seen (a race only loses an entry: each write is one
#: dict operation)
_cache: dict[str, str] = {}


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


def _suspect(text: str) -> bool:
    """Whether ``text`` may hold a secret: substring tests first (every secret but a card has
    an ``@`` or a keyword), the digit run last, so a clean text costs a few C-level scans
    instead of a regex tried at every position."""
    if "@" in text:
        return True
    lowered = text.lower()
    for word in _KEYWORDS:
        if word in lowered:
            return True
    if _DIGITS.search(text.replace("-", "").replace(" ", "")) is None:
        return False
    return _DIGIT_RUN.search(text) is not None


def is_clean(attributes: Mapping[str, Any]) -> bool:
    """Whether no value of ``attributes`` holds anything :func:`redact_text` would replace."""
    return _redact_attributes(attributes) is None


def redact_text(text: str) -> str:
    """``text`` with every recognised secret replaced (``text`` itself when there is none)."""
    if not _suspect(text):
        return text
    if "@" in text:  # addresses and URL credentials both need one
        if "://" in text:
            text = _URL_CREDENTIALS.sub(rf"\g<scheme>{REDACTED_SECRET}@", text)
        text = _EMAIL.sub(REDACTED_EMAIL, text)
    text = _BEARER.sub(rf"\1 {REDACTED_SECRET}", text)
    text = _PAIR.sub(rf"\1\2{REDACTED_SECRET}", text)
    return _CARD.sub(_card, text)


def _redact_string(text: str) -> str:
    """:func:`redact_text`, remembered for short values: a span repeats most of its values
    (names, queue, host, delivery info) from the span before, and its id three times."""
    known = _cache.get(text)
    if known is not None:
        return known
    redacted = redact_text(text)
    if len(text) <= _MAX_CACHED_LENGTH:
        remember(_cache, text, redacted)
    return redacted


def redact_value(value: Any) -> Any:
    """An attribute value redacted (the value itself when clean): only strings can hold a
    secret; numbers and booleans pass as they are."""
    kind = type(value)
    if kind is str:
        return _redact_string(value)
    if kind is int or kind is float or kind is bool:
        return value
    if isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray):
        if not any(isinstance(v, str) for v in value):
            return value  # numbers only (the stock time limits)
        items = tuple(redact_value(v) for v in value)
        return value if items == tuple(value) else items
    if isinstance(value, str):  # a str subclass
        return redact_text(value)
    return value


def _redact_attributes(
    attributes: Mapping[str, Any] | None, drop: frozenset[str] = frozenset()
) -> dict[str, Any] | None:
    """The attributes redacted and without ``drop``; ``None`` when that changes nothing (one
    pass over the values, no copy in the common case)."""
    if not attributes:
        return None
    result: dict[str, Any] | None = None
    cache = _cache
    for index, (key, value) in enumerate(attributes.items()):
        # Most values are strings seen in the span before: one dict lookup, no call.
        redacted = cache.get(value) if type(value) is str else None
        if redacted is None:
            redacted = redact_value(value)
        changed = redacted is not value and redacted != value  # a cached equal string
        if result is None and (changed or key in drop):
            result = {k: v for k, v in list(attributes.items())[:index] if k not in drop}
        if result is not None and key not in drop:
            result[key] = redacted
    return result


def redact_span(span: ReadableSpan, drop: frozenset[str] = frozenset()) -> ReadableSpan:
    """The span itself when clean (the common case costs one pass), else a redacted copy.
    ``drop``: attribute names left out of the copy (old semantic conventions)."""
    static = getattr(span, "static_attributes", None)
    if static is not None and drop.isdisjoint(static.keys):
        # The shared leading attributes were found clean when they were first seen: only
        # the span's own ones after them are scanned.
        own = dict(islice((span.attributes or {}).items(), static.count, None))
        if _redact_attributes(own, drop) is None:
            attributes = None
        else:
            attributes = _redact_attributes(span.attributes, drop)
    else:
        attributes = _redact_attributes(span.attributes, drop)
    events = [_redact_attributes(event.attributes) for event in span.events]
    description = span.status.description
    status = redact_text(description) if description else description
    if attributes is None and status == description and all(e is None for e in events):
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=dict(span.attributes or {}) if attributes is None else attributes,
        events=[
            e if redacted is None else Event(e.name, redacted, e.timestamp)
            for e, redacted in zip(span.events, events, strict=True)
        ],
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code, status or None),
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
