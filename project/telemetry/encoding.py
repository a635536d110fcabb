"""Spans to an OTLP export request, at a fraction of the upstream encoder's cost.

Encoding is most of what exporting a span costs (about 60 us for a task's run span with the
upstream encoder, in the export thread of the same process, so on the same CPUs as the tasks):
it builds one protobuf message per attribute from Python, and hashes the span's resource (which
serializes its attributes to JSON) for every span. :func:`encode_request` writes each span in
protobuf's wire format directly: string attributes by hand, other scalars from remembered
pieces, a task attempt's shared leading attributes as one block encoded when first seen
(:class:`~project.telemetry.attempts.StaticAttributes`), spans grouped by resource with one hash
per resource object. The request is exactly the upstream encoder's (tests compare the bytes).

The export thread of :class:`~project.telemetry.span_export.EncodingSpanProcessor` redacts and
encodes a batch at a time: a task attempt's span from the plain values the queue holds
(:func:`attempt_record`, :func:`encode_record`), any other span with :func:`encode_span`; then
:func:`assemble_request` makes the request of their bytes.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    InstrumentationScope,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PBResource
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PBSpan
from opentelemetry.proto.trace.v1.trace_pb2 import SpanFlags
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PBStatus
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope as Scope
from opentelemetry.trace import SpanContext, SpanKind, Status

from project.telemetry.caches import remember
from project.telemetry.redaction import redact_span, redact_value
from project.telemetry.wire import (
    attribute_bytes,
    attribute_messages,
    delimited,
    string_piece,
    string_value,
    value_field,
    varint,
)

__all__ = [
    "AttemptRecord",
    "EncodedSpan",
    "assemble_request",
    "attempt_record",
    "encode_record",
    "encode_request",
    "encode_span",
    "encode_spans",
]

#: A span as the export queue holds it: its resource, its scope, and its serialized ``Span``.
EncodedSpan = tuple[Resource, Scope | None, bytes]

logger = logging.getLogger(__name__)

_KINDS = {
    SpanKind.INTERNAL: PBSpan.SpanKind.SPAN_KIND_INTERNAL,
    SpanKind.SERVER: PBSpan.SpanKind.SPAN_KIND_SERVER,
    SpanKind.CLIENT: PBSpan.SpanKind.SPAN_KIND_CLIENT,
    SpanKind.PRODUCER: PBSpan.SpanKind.SPAN_KIND_PRODUCER,
    SpanKind.CONSUMER: PBSpan.SpanKind.SPAN_KIND_CONSUMER,
}
_HAS_IS_REMOTE = int(SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
_IS_REMOTE = int(SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)


def _flags(parent: SpanContext | None) -> int:
    if parent is not None and parent.is_remote:
        return _HAS_IS_REMOTE | _IS_REMOTE
    return _HAS_IS_REMOTE


_TRACE_ID, _SPAN_ID, _TRACE_STATE, _PARENT, _NAME = b"\x0a", b"\x12", b"\x1a", b"\x22", b"\x2a"
_KIND, _START, _END, _ATTRIBUTE, _DROPPED_ATTRIBUTES = b"\x30", b"\x39", b"\x41", b"\x4a", b"\x50"
_EVENT, _DROPPED_EVENTS, _LINK, _DROPPED_LINKS = b"\x5a", b"\x60", b"\x6a", b"\x70"
_STATUS, _FLAGS = b"\x7a", b"\x85\x01"
_names: dict[str, bytes] = {}  # span name -> serialized field 5
_statuses: dict[tuple[int, str | None], bytes] = {}  # (code, description) -> field 15

_CONSUMER_KIND = _KIND + varint(PBSpan.SpanKind.SPAN_KIND_CONSUMER)
_FLAGS_REMOTE = _FLAGS + (_HAS_IS_REMOTE | _IS_REMOTE).to_bytes(4, "little")
_FLAGS_LOCAL = _FLAGS + _HAS_IS_REMOTE.to_bytes(4, "little")


#: A task attempt's span as the export queue holds it (:func:`attempt_record`, as it ends):
#: resource, scope, shared block, name, trace id, span id, parent span id (``None``: a root),
#: whether the parent is remote, start and end (ns), the own attributes after the shared block,
#: and the status. Plain values: the span's objects die with the attempt.
AttemptRecord = tuple[
    Resource,
    "Scope | None",
    Any,
    str,
    int,
    int,
    "int | None",
    bool,
    int,
    int,
    tuple[tuple[str, Any], ...],
    Status,
]


def attempt_record(span: Any, drop: frozenset[str] = frozenset()) -> AttemptRecord | None:
    """What encoding a task attempt's span needs (a
    :class:`~project.telemetry.spans.ConsumerSpan` with its shared block, ended), read from its
    own fields; ``None`` for a span this path does not cover (trace state, events, links,
    dropped attributes, or a shared name in ``drop``), which the queue then holds itself."""
    static = getattr(span, "static_attributes", None)
    if static is None:
        return None
    context = span._context
    attributes = span._attributes
    end = span._end_time
    if (
        end is None
        or context.trace_state
        or span._events
        or span._links
        or attributes.dropped
        or not drop.isdisjoint(static.keys)
    ):
        return None
    parent = span._parent
    return (
        span._resource,
        span._instrumentation_scope,
        static,
        span._name,
        context.trace_id,
        context.span_id,
        None if parent is None else parent.span_id,
        parent is not None and parent.is_remote,
        span._start_time,
        end,
        tuple(islice(attributes._dict.items(), static.count, None)),
        span._status,
    )


def encode_record(record: AttemptRecord, drop: frozenset[str] = frozenset()) -> bytes:
    """An attempt's span (:func:`attempt_record`) redacted and encoded, as :func:`_span` writes
    ``redact_span(span, drop)``: the shared block was found clean when first seen, so only the
    attempt's own values are scanned (a task's id, which is also its message and conversation
    id, once)."""
    (_, _, static, name, trace_id, span_id, parent_id, remote, start, end, own, status) = record
    parts = [
        _TRACE_ID + b"\x10" + trace_id.to_bytes(16, "big"),
        _SPAN_ID + b"\x08" + span_id.to_bytes(8, "big"),
    ]
    if parent_id is not None:
        parts.append(_PARENT + b"\x08" + parent_id.to_bytes(8, "big"))
    parts += (
        _name_field(name),
        _CONSUMER_KIND,
        _START + start.to_bytes(8, "little"),
        _END + end.to_bytes(8, "little"),
        static.encoded,
    )
    last: Any = None
    value_bytes = b""
    for key, value in own:
        if key in drop:
            continue
        if type(value) is not str:
            parts += attribute_bytes({key: redact_value(value)})
            continue
        if len(value) <= _SHORT:  # a state, an outcome: a handful of values, remembered
            piece = string_piece(key, redact_value(value))
            if piece is not None:
                parts.append(piece)
            continue
        try:
            if value != last:  # an id is scanned and written once for every key it is under
                value_bytes = string_value(redact_value(value))
                last = value
            parts.append(value_field(key, value_bytes))
        except UnicodeEncodeError:  # a lone surrogate: skipped, as upstream skips it
            last = None
            logger.debug("attribute %s not encoded", key, exc_info=True)
    description = status.description
    if description:
        redacted = redact_value(description)
        if redacted != description:
            status = Status(status.status_code, redacted)
    parts.append(_status_field(status))
    parts.append(_FLAGS_REMOTE if remote else _FLAGS_LOCAL)
    return b"".join(parts)


#: Own values this long or shorter are remembered with their key (a state, an outcome); ids
#: are longer (a task id has 36 characters) and new in every span: not remembered, so they do
#: not crowd the encoder's cache.
_SHORT = 16


def encode_span(span: ReadableSpan, drop: frozenset[str] = frozenset()) -> bytes:
    """``span`` redacted (:func:`~project.telemetry.redaction.redact_span`; ``drop``: attribute
    names left out) as a serialized OTLP ``Span``."""
    return _span(redact_span(span, drop))


def _span(span: ReadableSpan) -> bytes:
    """``span`` as a serialized OTLP ``Span``: the fields the upstream encoder sets, in field
    order, defaults left out as protobuf leaves them out."""
    context = span.get_span_context()
    assert context is not None  # an SDK span always has one
    parent = span.parent
    parts = [
        _TRACE_ID + b"\x10" + context.trace_id.to_bytes(16, "big"),
        _SPAN_ID + b"\x08" + context.span_id.to_bytes(8, "big"),
    ]
    state = context.trace_state
    if state:
        parts.append(
            delimited(_TRACE_STATE, ",".join(f"{k}={v}" for k, v in state.items()).encode())
        )
    if parent:
        parts.append(_PARENT + b"\x08" + parent.span_id.to_bytes(8, "big"))
    if span.name:
        parts.append(_name_field(span.name))
    kind = _KINDS[span.kind]
    if kind:
        parts.append(_KIND + varint(kind))
    if span.start_time:
        parts.append(_START + span.start_time.to_bytes(8, "little"))
    if span.end_time:
        parts.append(_END + span.end_time.to_bytes(8, "little"))
    static = getattr(span, "static_attributes", None)
    if static is None:
        parts += attribute_bytes(span.attributes)
    else:  # the shared leading attributes, encoded once; the span's own ones after them
        parts.append(static.encoded)
        own = islice((span.attributes or {}).items(), static.count, None)
        parts += attribute_bytes(dict(own))
    if span.dropped_attributes:
        parts.append(_DROPPED_ATTRIBUTES + varint(span.dropped_attributes))
    for event in span.events:
        message = PBSpan.Event(
            name=event.name,
            time_unix_nano=event.timestamp,
            attributes=attribute_messages(event.attributes),
            dropped_attributes_count=event.dropped_attributes,
        )
        parts.append(delimited(_EVENT, message.SerializeToString()))
    if span.dropped_events:
        parts.append(_DROPPED_EVENTS + varint(span.dropped_events))
    for link in span.links:
        message = PBSpan.Link(
            trace_id=link.context.trace_id.to_bytes(16, "big"),
            span_id=link.context.span_id.to_bytes(8, "big"),
            attributes=attribute_messages(link.attributes),
            dropped_attributes_count=link.dropped_attributes,
            flags=_flags(link.context),
        )
        parts.append(delimited(_LINK, message.SerializeToString()))
    if span.dropped_links:
        parts.append(_DROPPED_LINKS + varint(span.dropped_links))
    if span.status is not None:
        parts.append(_status_field(span.status))
    parts.append(_FLAGS + _flags(parent).to_bytes(4, "little"))
    return b"".join(parts)


def _name_field(name: str) -> bytes:
    """A span name as serialized field 5, remembered (a handful of task names)."""
    return _names.get(name) or remember(_names, name, delimited(_NAME, name.encode()))


def _status_field(status: Status) -> bytes:
    """A span status as serialized field 15, remembered by code and description."""
    key = (status.status_code.value, status.description)
    encoded = _statuses.get(key)
    if encoded is None:
        fields: dict[str, Any] = {"code": key[0]}
        fields["message"] = key[1]  # None: unset (the stubs do not say so)
        encoded = remember(
            _statuses, key, delimited(_STATUS, PBStatus(**fields).SerializeToString())
        )
    return encoded


def encode_request(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialized export request for ``spans`` (as they are: no redaction)."""
    return assemble_request([(s.resource, s.instrumentation_scope, _span(s)) for s in spans])


def assemble_request(spans: Iterable[EncodedSpan]) -> bytes:
    """The serialized export request of spans already encoded, grouped by resource, then
    instrumentation scope (as upstream: equal resources and scopes share a group; a resource is
    hashed once per batch, not per span, since hashing one serializes its attributes)."""
    canonical: dict[int, Any] = {}  # id -> the first equal resource (one hash per object)
    by_value: dict[Any, Any] = {}
    grouped: dict[int, dict[Any, list[bytes]]] = defaultdict(lambda: defaultdict(list))
    for span_resource, scope, encoded in spans:
        resource = canonical.get(id(span_resource))
        if resource is None:
            resource = by_value.setdefault(span_resource, span_resource)
            canonical[id(span_resource)] = resource
        grouped[id(resource)][scope or None].append(encoded)
    resources = {id(r): r for r in by_value.values()}
    request = []
    for key, scopes in grouped.items():
        resource = resources[key]
        body = [
            delimited(
                b"\x0a",
                PBResource(attributes=attribute_messages(resource.attributes)).SerializeToString(),
            )
        ]
        for scope, encoded_spans in scopes.items():
            body.append(delimited(b"\x12", _scope_spans(scope, encoded_spans)))
        if resource.schema_url:
            body.append(delimited(b"\x1a", resource.schema_url.encode()))
        request.append(delimited(b"\x0a", b"".join(body)))
    return b"".join(request)


def encode_spans(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """The export request for ``spans`` as a protobuf message (what upstream's encoder
    returns; the exporter sends :func:`encode_request`'s bytes without parsing them)."""
    parsed: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(encode_request(spans))
    return parsed


def _scope_spans(scope: Any, spans: list[bytes]) -> bytes:
    """A serialized ``ScopeSpans`` of already serialized spans."""
    if scope is None:
        head = InstrumentationScope().SerializeToString()
        schema_url = ""
    else:
        head = InstrumentationScope(
            name=scope.name, version=scope.version, attributes=attribute_messages(scope.attributes)
        ).SerializeToString()
        schema_url = scope.schema_url or ""
    parts = [delimited(b"\x0a", head), *(delimited(b"\x12", s) for s in spans)]
    if schema_url:
        parts.append(delimited(b"\x1a", schema_url.encode()))
    return b"".join(parts)
