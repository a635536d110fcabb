"""The pieces of a task attempt's span that the kit makes in one step (see
:mod:`project.telemetry.consumer`): its parent from the message, its ``celery.*`` attributes,
and the span object itself.

Why not ``Tracer.start_span``: an SDK span costs about 30 us to start and end with no
attribute, 60 us with a task's 22 (each validated and copied under a lock, a read-only copy
made at the end), on the same CPUs as the tasks. :class:`ConsumerSpan` is the SDK's own
``Span`` class (its methods, processors, exporters and user code's ``set_attribute`` work as
before) made without its constructor's per-attribute work, following ``Tracer.start_span`` line
by line: the tracer's sampler, ids, processors and limits (a limit below what the kit sets
takes the SDK's own path).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from time import time_ns
from types import MappingProxyType
from typing import Any

from celery.app.task import Context as _RequestContext
from opentelemetry import propagate, trace
from opentelemetry.attributes import BoundedAttributes, _clean_attribute_value
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.trace import Span, SpanLimits, Tracer
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.status import Status, StatusCode

__all__ = [
    "OWN_KEYS",
    "ConsumerSpan",
    "StaticAttributes",
    "celery_attributes",
    "extract_parent",
    "start_consumer_span",
    "static_attributes",
]

_UNSET = Status(StatusCode.UNSET)
_SAMPLED = (Decision.RECORD_AND_SAMPLE,)
# The W3C traceparent of version 00, as TraceContextTextMapPropagator accepts it.
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


class _RequestGetter(Getter[Any]):
    """The stock getter (headers are request attributes), for other propagators."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        value = getattr(carrier, key, None)
        if value is None:
            return None
        if isinstance(value, str):
            return [value]
        if isinstance(value, list | tuple):
            return [str(v) for v in value]
        return [str(value)]

    def keys(self, carrier: Any) -> list[str]:
        return []


_getter = _RequestGetter()


_checked: list[Any] = [None, False]  # the global propagator last seen, and whether it is W3C's


def _default_propagation() -> bool:
    """Whether the global propagator is OpenTelemetry's default (W3C trace context and
    baggage), the one the fast path reproduces (checked again when it is replaced)."""
    textmap = propagate.get_global_textmap()
    if textmap is not _checked[0]:
        kinds = [type(p) for p in getattr(textmap, "_propagators", ())]
        default = isinstance(textmap, CompositePropagator) and kinds == [
            TraceContextTextMapPropagator,
            W3CBaggagePropagator,
        ]
        _checked[:] = [textmap, default]
    return bool(_checked[1])


def extract_parent(request: Any) -> Context | None:
    """The trace context the message carries (``None``: none), as
    ``propagate.extract(request)`` finds it. A plain version-00 ``traceparent`` without
    ``tracestate`` or ``baggage`` (what the kit's producers send) is read directly; anything
    else goes through the global propagator."""
    header = getattr(request, "traceparent", None)
    if (
        type(header) is str
        and getattr(request, "tracestate", None) is None
        and getattr(request, "baggage", None) is None
        and _default_propagation()
    ):
        match = _TRACEPARENT.fullmatch(header.strip(" \t"))
        if match is None:
            return None
        trace_id, span_id, flags = match.groups()
        if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
            return None
        parent = SpanContext(int(trace_id, 16), int(span_id, 16), True, TraceFlags(int(flags, 16)))
        return trace.set_span_in_context(NonRecordingSpan(parent))
    if header is None and getattr(request, "baggage", None) is None and _default_propagation():
        return None
    context = propagate.extract(request, getter=_getter)
    return context or None


# -- the stock instrumentation's celery.* attributes ------------------------------------------

#: What ``opentelemetry.instrumentation.celery.utils.set_attributes_from_context`` reads from a
#: request, in its order, with the name it sets (``None``: ``celery.<key>``).
_CONTEXT_KEYS: tuple[tuple[str, str], ...] = (
    ("compression", "celery.compression"),
    ("correlation_id", "messaging.conversation_id"),
    ("countdown", "celery.countdown"),
    ("delivery_info", "celery.delivery_info"),
    ("declare", "messaging.destination_kind"),
    ("eta", "celery.eta"),
    ("exchange", "celery.exchange"),
    ("expires", "celery.expires"),
    ("hostname", "celery.hostname"),
    ("id", "messaging.message.id"),
    ("priority", "celery.priority"),
    ("queue", "celery.queue"),
    ("reply_to", "celery.reply_to"),
    ("retries", "celery.retries"),
    ("routing_key", "messaging.destination"),
    ("serializer", "celery.serializer"),
    ("timelimit", "celery.timelimit"),
    ("origin", "celery.hostname"),
    ("state", "celery.state"),
)


@lru_cache(maxsize=256)  # (exchange, routing key, priority, redelivered): a handful
def _delivery_text(items: tuple[tuple[Any, Any], ...]) -> str:
    return str(dict(items))


def _delivery(value: Mapping[str, Any]) -> str:
    try:
        return _delivery_text(tuple(value.items()))
    except TypeError:  # an unhashable value in it: not remembered
        return str(value)


#: Request keys whose value is new in every message: the span's own, not its shared block.
OWN_KEYS = frozenset({"id", "correlation_id", "eta", "expires", "countdown"})


def celery_attributes(
    carrier: Any,
    shared: dict[str, Any],
    own: dict[str, Any] | None = None,
    omit: frozenset[str] = frozenset(),
) -> None:
    """Add what the stock instrumentation sets from ``carrier`` (a request, or the postrun
    signal's arguments), with the same names and values (a test compares): to ``own`` for the
    keys in :data:`OWN_KEYS` (when given), else to ``shared``; attribute names in ``omit`` are
    left out (the old conventions' names, under ``OTEL_SEMCONV_STABILITY_OPT_IN=messaging``)."""
    # A request's own values are in its __dict__; what it does not hold falls back to
    # Context's class defaults, all None (or 0 retries), which are skipped below anyway.
    values = getattr(carrier, "__dict__", None) if isinstance(carrier, _RequestContext) else None
    get = values.get if values is not None else carrier.get
    for key, name in _CONTEXT_KEYS:
        value = get(key)
        if value is None or value == "":
            continue
        target = own if own is not None and key in OWN_KEYS else shared
        if key == "timelimit":
            if value in [(None, None), [None, None]]:
                continue
            if None in value:
                value = ["" if limit is None else str(limit) for limit in value]
        elif key == "retries":
            if value == 0:
                continue
        elif key == "delivery_info":
            routing_key = value.get("routing_key")
            if routing_key is not None and "messaging.destination" not in omit:
                shared.pop("messaging.destination", None)
                shared["messaging.destination"] = routing_key
            value = _delivery(value)
        elif key == "declare":
            for declare in value:
                kind = declare.exchange.type
                if kind in ("direct", "topic"):
                    value = "queue" if kind == "direct" else "topic"
                    break
        if name in omit:
            continue
        kind = type(value)
        if kind is not str and kind is not int and kind is not bool and kind is not float:
            value = _clean_attribute_value(value, None)  # what the SDK's span stores: a tuple
            if value is None:
                continue
        target.pop(name, None)  # the stock instrumentation's order: the last set goes last
        target[name] = value


# -- the span ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StaticAttributes:
    """A span's leading ``count`` attributes, shared with every attempt of the same task on
    the same queue from the same producer (names, queue, host, delivery, limits): encoded once
    (``encoded``: their serialized OTLP fields) and found clean of personal data once, so the
    exporter encodes and scans only what is the span's own (its ids, outcome, state)."""

    keys: frozenset[str]
    count: int
    encoded: bytes


_MAX_STATIC = 1024  # distinct sets remembered (tasks x queues x producers); cleared when full
_statics: dict[tuple[tuple[str, Any], ...], StaticAttributes | None] = {}


def static_attributes(attributes: dict[str, Any]) -> StaticAttributes | None:
    """The shared block for ``attributes`` (made on first sight); ``None`` when they cannot be
    remembered (an unhashable value) or need redaction (then the exporter does it as for any
    span)."""
    key = tuple(attributes.items())
    try:
        return _statics[key]
    except KeyError:
        pass
    except TypeError:
        return None
    from project.telemetry.redaction import is_clean
    from project.telemetry.wire import static_block

    encoded = static_block(attributes) if is_clean(attributes) else None
    found = None if encoded is None else StaticAttributes(frozenset(attributes), len(key), encoded)
    if len(_statics) >= _MAX_STATIC:
        _statics.clear()
    _statics[key] = found
    return found


class ConsumerSpan(Span):
    """The SDK's span, made from a known-valid attribute dict without the constructor's
    per-attribute work; ended without the read-only copy (an ended span refuses changes, so
    the processors may keep the span itself)."""

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        tracer: Tracer,
        attributes: dict[str, Any],
        end_metrics: Any,
        parent_context: Context | None,
        static: StaticAttributes | None = None,
    ) -> None:
        # Span.__init__ is replaced, not called: these are the fields it sets.
        limits: SpanLimits = tracer._span_limits
        self._name = name
        self._context = context
        self._kind = SpanKind.CONSUMER
        self._instrumentation_info = tracer.instrumentation_info
        self._instrumentation_scope = tracer._instrumentation_scope
        self._parent = parent
        self._start_time = None
        self._end_time = None
        self._resource = tracer.resource
        self._status = _UNSET
        self._sampler = tracer.sampler
        self._trace_config = None
        self._record_exception = True
        self._set_status_on_exception = True
        self._span_processor = tracer.span_processor
        self._limits = limits
        self._lock = threading.Lock()
        bounded = BoundedAttributes(
            limits.max_span_attributes,
            None,
            immutable=False,
            max_value_len=limits.max_span_attribute_length,
        )
        bounded._dict = attributes  # every value is a str, int or tuple the kit made
        self._attributes = self._bounded = bounded
        # Most attempts have no event or link: their lists are made on first use.
        self._events: Any = ()
        self._links: Any = ()
        self._record_end_metrics = end_metrics
        #: The leading attributes shared with other spans (see StaticAttributes); dropped as
        #: soon as one of them is set again (the dict's order then changes).
        self.static_attributes = static
        self.start(parent_context=parent_context)

    def _add_event(self, event: Any) -> None:
        if type(self._events) is tuple:
            self._events = BoundedList(self._limits.max_events)
        super()._add_event(event)

    def _add_link(self, link: Any) -> None:
        if type(self._links) is tuple:
            self._links = BoundedList(self._limits.max_links)
        super()._add_link(link)

    def set_attribute(self, key: str, value: Any) -> None:
        static = self.static_attributes
        if static is not None and key in static.keys:
            self.static_attributes = None
        super().set_attribute(key, value)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        static = self.static_attributes
        if static is not None and not static.keys.isdisjoint(attributes):
            self.static_attributes = None
        super().set_attributes(attributes)

    @property
    def attributes(self) -> MappingProxyType[str, Any]:
        """A read-only view of the dict itself: exporters iterate it in C, not item by item."""
        return MappingProxyType(self._bounded._dict)

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._end_time is not None:
                return  # as the SDK's span (which also logs a warning)
            self._end_time = end_time if end_time is not None else time_ns()
            self._bounded._immutable = True
        if self._record_end_metrics:
            self._record_end_metrics()
        self._span_processor._on_ending(self)
        self._span_processor.on_end(self)


def _fits(limits: SpanLimits, attributes: Mapping[str, Any]) -> bool:
    """Whether the SDK's limits keep ``attributes`` as they are (else: ``Tracer.start_span``)."""
    if limits.max_span_attributes is not None and len(attributes) > limits.max_span_attributes:
        return False
    longest = limits.max_span_attribute_length
    return longest is None or all(
        not isinstance(v, str) or len(v) <= longest for v in attributes.values()
    )


def start_consumer_span(
    tracer: Tracer,
    name: str,
    parent_context: Context | None,
    attributes: dict[str, Any],
    static: StaticAttributes | None = None,
) -> trace.Span:
    """What ``tracer.start_span(name, parent_context, SpanKind.CONSUMER, attributes)`` returns,
    for the kit's own ``attributes`` (valid values, owned by the span from here on; ``static``:
    the block its leading attributes are)."""
    if not tracer._is_enabled() or not _fits(tracer._span_limits, attributes):
        return tracer.start_span(
            name, context=parent_context, kind=SpanKind.CONSUMER, attributes=attributes
        )
    parent = trace.get_current_span(parent_context).get_span_context()
    if not parent.is_valid:
        parent_span: SpanContext | None = None
        trace_id = tracer.id_generator.generate_trace_id()
        random_trace_id = tracer.id_generator.is_trace_id_random()
    else:
        parent_span = parent
        trace_id = parent.trace_id
        random_trace_id = parent.trace_flags.random_trace_id
    sampled = tracer.sampler.should_sample(
        parent_context, trace_id, name, SpanKind.CONSUMER, attributes, ()
    )
    decision = sampled.decision
    flags = TraceFlags.SAMPLED if decision in _SAMPLED else TraceFlags.DEFAULT
    if random_trace_id:
        flags |= TraceFlags.RANDOM_TRACE_ID
    context = SpanContext(
        trace_id,
        tracer.id_generator.generate_span_id(),
        is_remote=False,
        trace_flags=TraceFlags(flags),
        trace_state=sampled.trace_state,
    )
    end_metrics = tracer._tracer_metrics.start_span(parent_span, sampled.decision)
    if decision is Decision.DROP:  # RECORD_ONLY and RECORD_AND_SAMPLE record
        return NonRecordingSpan(context)
    # The SDK's span takes the attributes the sampler returns (the standard samplers return
    # the ones they were given; one of a user's may add or take away some).
    if sampled.attributes != attributes:
        attributes, static = dict(sampled.attributes or {}), None
    return ConsumerSpan(
        name, context, parent_span, tracer, attributes, end_metrics, parent_context, static
    )
