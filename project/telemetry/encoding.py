"""Spans to OTLP protobuf, with each attribute's encoded form remembered.

Encoding is most of what exporting a span costs (about 60 us for a task's run span, in the
export thread of the same process, so on the same CPUs as the tasks), and most of that is
building one ``KeyValue`` message per attribute. A task's span repeats most of its attributes
from the span before (task name, queue, host, consumer group, delivery info, the stock
instrumentation's constants) and its id three times; :func:`encode_spans` therefore builds each
distinct scalar ``(key, value)`` once and copies it after (the copy is a C-level one), and
otherwise produces exactly the request the OTLP exporter's own encoder does (a test compares
the bytes). :class:`CachingSpanExporter` is the gRPC exporter with this encoder.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PBResource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, SpanFlags
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PBSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as PBStatus
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind

__all__ = ["CachingSpanExporter", "encode_spans"]

logger = logging.getLogger(__name__)

_KINDS = {
    SpanKind.INTERNAL: PBSpan.SpanKind.SPAN_KIND_INTERNAL,
    SpanKind.SERVER: PBSpan.SpanKind.SPAN_KIND_SERVER,
    SpanKind.CLIENT: PBSpan.SpanKind.SPAN_KIND_CLIENT,
    SpanKind.PRODUCER: PBSpan.SpanKind.SPAN_KIND_PRODUCER,
    SpanKind.CONSUMER: PBSpan.SpanKind.SPAN_KIND_CONSUMER,
}
_MAX_CACHED = 4096  # distinct (key, value) pairs remembered; cleared when full
_MAX_CACHED_LENGTH = 256  # longer strings (messages, tracebacks) are encoded each time
_cache: dict[tuple[str, type, Any], KeyValue] = {}  # used by the export thread only


def _value(value: Any) -> AnyValue:
    if value is None:
        return AnyValue()
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, Sequence):
        return AnyValue(array_value=ArrayValue(values=[_value(v) for v in value]))
    if isinstance(value, Mapping):
        pairs = [KeyValue(key=str(k), value=_value(v)) for k, v in value.items()]
        return AnyValue(kvlist_value=KeyValueList(values=pairs))
    raise TypeError(f"cannot encode an attribute of type {type(value).__name__}")


def _attributes(attributes: Mapping[str, Any] | None) -> list[KeyValue]:
    encoded = []
    for key, value in (attributes or {}).items():
        kind = type(value)
        cacheable = kind is bool or kind is int or kind is float
        cacheable = cacheable or (kind is str and len(value) <= _MAX_CACHED_LENGTH)
        if not cacheable:
            try:
                encoded.append(KeyValue(key=key, value=_value(value)))
            except TypeError:  # the SDK cleans attributes: never seen, skipped as upstream does
                logger.debug("attribute %s not encoded", key, exc_info=True)
            continue
        entry = (key, kind, value)  # the type too: True and 1 are equal keys
        pair = _cache.get(entry)
        if pair is None:
            if len(_cache) >= _MAX_CACHED:
                _cache.clear()
            pair = _cache[entry] = KeyValue(key=key, value=_value(value))
        encoded.append(pair)
    return encoded


def _flags(parent: SpanContext | None) -> int:
    flags: int = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
    if parent is not None and parent.is_remote:
        flags |= SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
    return flags


def _span(span: ReadableSpan) -> PBSpan:
    context = span.get_span_context()
    assert context is not None  # an SDK span always has one
    parent = span.parent
    state = context.trace_state
    # As a mapping: protobuf reads None as unset, as the upstream encoder relies on (the
    # stubs' types do not say so).
    fields: dict[str, Any] = dict(
        trace_id=context.trace_id.to_bytes(16, "big"),
        span_id=context.span_id.to_bytes(8, "big"),
        trace_state=",".join(f"{k}={v}" for k, v in state.items()) if state is not None else None,
        parent_span_id=parent.span_id.to_bytes(8, "big") if parent else None,
        name=span.name,
        kind=_KINDS[span.kind],
        start_time_unix_nano=span.start_time,
        end_time_unix_nano=span.end_time,
        attributes=_attributes(span.attributes),
        events=[
            PBSpan.Event(
                name=e.name,
                time_unix_nano=e.timestamp,
                attributes=_attributes(e.attributes),
                dropped_attributes_count=e.dropped_attributes,
            )
            for e in span.events
        ]
        or None,
        links=[
            PBSpan.Link(
                trace_id=link.context.trace_id.to_bytes(16, "big"),
                span_id=link.context.span_id.to_bytes(8, "big"),
                attributes=_attributes(link.attributes),
                dropped_attributes_count=link.dropped_attributes,
                flags=_flags(link.context),
            )
            for link in span.links
        ]
        or None,
        status=_status(span),
        dropped_attributes_count=span.dropped_attributes,
        dropped_events_count=span.dropped_events,
        dropped_links_count=span.dropped_links,
        flags=_flags(parent),
    )
    return PBSpan(**fields)


def _status(span: ReadableSpan) -> PBStatus | None:
    if span.status is None:
        return None
    fields: dict[str, Any] = {"code": span.status.status_code.value}
    fields["message"] = span.status.description
    return PBStatus(**fields)


def encode_spans(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """The export request for ``spans``, grouped by resource, then instrumentation scope."""
    grouped: dict[Any, dict[Any, list[PBSpan]]] = defaultdict(lambda: defaultdict(list))
    for span in spans:
        grouped[span.resource][span.instrumentation_scope or None].append(_span(span))
    resources = []
    for resource, scopes in grouped.items():
        scope_spans = [_scope_spans(scope, encoded) for scope, encoded in scopes.items()]
        resources.append(
            ResourceSpans(
                resource=PBResource(attributes=_attributes(resource.attributes)),
                scope_spans=scope_spans,
                schema_url=resource.schema_url,
            )
        )
    return ExportTraceServiceRequest(resource_spans=resources)


def _scope_spans(scope: Any, spans: list[PBSpan]) -> ScopeSpans:
    if scope is None:
        return ScopeSpans(scope=InstrumentationScope(), spans=spans)
    encoded = InstrumentationScope(
        name=scope.name, version=scope.version, attributes=_attributes(scope.attributes)
    )
    fields: dict[str, Any] = {"scope": encoded, "spans": spans, "schema_url": scope.schema_url}
    return ScopeSpans(**fields)


class CachingSpanExporter(OTLPSpanExporter):
    """The OTLP/gRPC span exporter, encoding with :func:`encode_spans`."""

    def _translate_data(self, data: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
        return encode_spans(data)
