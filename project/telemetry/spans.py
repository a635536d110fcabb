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
from collections.abc import Callable, Mapping
from time import time_ns
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.trace import Span, SpanLimits, Tracer
from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.trace.status import Status, StatusCode

from project.telemetry.breaker import Breaker, BreakerSampler
from project.telemetry.plans import plan_of

if TYPE_CHECKING:
    from project.telemetry.attempts import StaticAttributes

__all__ = [
    "ConsumerSpan",
    "default_sampler_breaker",
    "extract_parent",
    "own_context",
    "plain_parent",
    "start_consumer_span",
]

_UNSET = Status(StatusCode.UNSET)
_SAMPLED = (Decision.RECORD_AND_SAMPLE,)
# The W3C traceparent of version 00, as TraceContextTextMapPropagator accepts it.
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_MAX_TRACE_ID, _MAX_SPAN_ID = 2**128 - 1, 2**64 - 1
#: What nearly every traceparent carries: sampled or not, with a random trace id or not (the
#: SDK's producers set both bits: "03").
_FLAGS = {f"{n:02x}": TraceFlags(n) for n in range(4)}
_FLAGS_BY_BITS = {int(flags): flags for flags in _FLAGS.values()}


def _span_context(trace_id: int, span_id: int, remote: bool, flags: TraceFlags) -> SpanContext:
    """``SpanContext(trace_id, span_id, remote, flags)`` for ids known to be valid (non-zero,
    in range) and no trace state: the tuple it builds, without its checks in Python."""
    made: SpanContext = tuple.__new__(
        SpanContext, (trace_id, span_id, remote, flags, DEFAULT_TRACE_STATE, True)
    )
    return made


#: An attempt's own flags by (sampled, random trace id), as Tracer.start_span computes them.
_OWN_FLAGS = {
    (sampled, random): TraceFlags(
        (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
        | (TraceFlags.RANDOM_TRACE_ID if random else 0)
    )
    for sampled in (False, True)
    for random in (False, True)
}


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


def extract_parent(
    request: Any, values: Mapping[str, Any]
) -> tuple[Context | None, SpanContext | None]:
    """The trace context the message carries, as ``propagate.extract(request)`` finds it, and
    the parent span's context in it (``None``, ``None``: none; ``values``: what the request
    holds, :func:`~project.telemetry.attempts.request_values`); with no context at all the
    span's parent is the current span, as for ``tracer.start_span``. A plain version-00
    ``traceparent`` without ``tracestate`` or ``baggage`` (what the kit's producers send) is
    read directly; anything else goes through the global propagator."""
    header = values.get("traceparent")
    baggage = values.get("baggage")
    if type(header) is str and baggage is None and values.get("tracestate") is None:
        if _default_propagation():
            parent = _plain_parent(header)
            if parent is None:
                return None, None
            return Context({_SPAN_KEY: NonRecordingSpan(parent)}), parent
    elif header is None and baggage is None and _default_propagation():
        return None, None
    context = propagate.extract(request, getter=_getter) or None
    if context is None:
        return None, None
    found = trace.get_current_span(context).get_span_context()
    return context, (found if found.is_valid else None)


def plain_parent(values: Mapping[str, Any]) -> SpanContext | None:
    """The remote parent of a request whose trace context is a plain, valid version-00
    ``traceparent`` alone (no ``tracestate``, no ``baggage``, OpenTelemetry's default
    propagators): what :func:`extract_parent` finds for it; ``None`` for anything else."""
    header = values.get("traceparent")
    if (
        type(header) is not str
        or values.get("baggage") is not None
        or values.get("tracestate") is not None
        or not _default_propagation()
    ):
        return None
    return _plain_parent(header)


def _plain_parent(header: str) -> SpanContext | None:
    match = _TRACEPARENT.fullmatch(header.strip(" \t"))
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    trace_flags = _FLAGS.get(flags) or TraceFlags(int(flags, 16))
    return _span_context(int(trace_id, 16), int(span_id, 16), True, trace_flags)


def own_context(
    parent: SpanContext, breaker: Breaker, new_span_id: Callable[[], int]
) -> SpanContext | None:
    """The context of an attempt's span under a sampled remote ``parent``, as the kit's
    default sampler (whose breaker is ``breaker``: :func:`default_sampler_breaker`) decides it
    without being asked; ``None`` when the parent is not sampled, the breaker is open, or the
    new id is not valid (then :func:`start_consumer_span` decides)."""
    flags = parent.trace_flags & 3  # sampled, random trace id
    if not flags & 1 or not parent.is_remote or parent.trace_state:
        return None
    if breaker.open_until != 0.0 and not breaker.closed():
        return None
    span_id = new_span_id()
    if not 0 < span_id <= _MAX_SPAN_ID:
        return None
    return _span_context(parent.trace_id, span_id, False, _FLAGS_BY_BITS[flags])


def default_sampler_breaker(sampler: Any) -> Breaker | None:
    """The breaker of the kit's default sampler (the breaker around ``ParentBased`` with its
    stock delegate for a sampled remote parent); ``None`` for any other sampler."""
    if (
        type(sampler) is BreakerSampler
        and type(sampler.inner) is ParentBased
        and sampler.inner._remote_parent_sampled is ALWAYS_ON
    ):
        breaker: Breaker = sampler.breaker
        return breaker
    return None


# -- the span ----------------------------------------------------------------------------------


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
        self._span_processor = processor = tracer.span_processor
        self._plan = plan = plan_of(processor)
        self._limits = limits
        self._lock = threading.Lock()
        # BoundedAttributes.__init__ is replaced too (it makes a dict to throw away): these are
        # its fields, holding the kit's dict (every value a str, int or tuple the kit made).
        bounded = _new_attributes(BoundedAttributes)
        bounded._dict = attributes
        bounded.maxlen = limits.max_span_attributes
        bounded.dropped = 0
        bounded.max_value_len = limits.max_span_attribute_length
        bounded._lock = threading.Lock()
        bounded._immutable = False
        self._attributes = self._bounded = bounded
        # Most attempts have no event or link: their lists are made on first use.
        self._events: Any = ()
        self._links: Any = ()
        self._record_end_metrics = end_metrics
        #: The leading attributes shared with other spans (see StaticAttributes); dropped as
        #: soon as one of them is set again (the dict's order then changes).
        self.static_attributes = static
        # Span.start on a span nobody else holds yet: no lock, no check.
        self._start_time = time_ns()
        if plan is None:
            processor.on_start(self, parent_context=parent_context)
        else:
            for starter in plan.starting:
                starter.on_start(self, parent_context=parent_context)

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

    def put_attribute(self, key: str, value: str) -> None:
        """``set_attribute(key, value)`` for a value the kit made (a short ``str``: an outcome,
        a state), without the checks it never needs; anything unusual takes the SDK's path."""
        bounded = self._bounded
        values = bounded._dict
        longest = bounded.max_value_len
        static = self.static_attributes
        if (
            (static is not None and key in static.keys)
            or (longest is not None and len(value) > longest)
            or (key not in values and bounded.maxlen is not None and len(values) >= bounded.maxlen)
        ):
            self.set_attribute(key, value)
            return
        with self._lock:
            ended = self._end_time is not None
            if not ended:
                values.pop(key, None)  # a value set again goes last, as BoundedAttributes does
                values[key] = value
        if ended:
            self.set_attribute(key, value)  # refused with the SDK's warning

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
        plan = self._plan
        if plan is None:
            self._span_processor._on_ending(self)
            self._span_processor.on_end(self)
            return
        for processor in plan.ending:
            processor._on_ending(self)
        for processor in plan.ended:
            processor.on_end(self)


_new_attributes = object.__new__


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
    parent_span: SpanContext | None,
    attributes: dict[str, Any],
    static: StaticAttributes | None = None,
) -> trace.Span:
    """What ``tracer.start_span(name, parent_context, SpanKind.CONSUMER, attributes)`` returns,
    for the kit's own ``attributes`` (valid values, owned by the span from here on; ``static``:
    the block its leading attributes are). ``parent_span``: the valid span context in
    ``parent_context``, if any (as :func:`extract_parent` returns both)."""
    if not tracer._is_enabled() or not _fits(tracer._span_limits, attributes):
        return tracer.start_span(
            name, context=parent_context, kind=SpanKind.CONSUMER, attributes=attributes
        )
    if parent_context is None:  # nothing in the message: the current span, as the SDK does
        current = trace.get_current_span().get_span_context()
        parent_span = current if current.is_valid else None
    if parent_span is None:
        trace_id = tracer.id_generator.generate_trace_id()
        random_trace_id = tracer.id_generator.is_trace_id_random()
    else:
        trace_id = parent_span.trace_id
        random_trace_id = parent_span.trace_flags.random_trace_id
    sampler = tracer.sampler
    trace_state: TraceState | None
    if parent_span is not None and _samples_remote_sampled(sampler, parent_span):
        # What the default sampler decides for a sampled remote parent (the producer's span),
        # without building a SamplingResult: sample, the attributes as given, the parent's
        # trace state.
        decision, trace_state = Decision.RECORD_AND_SAMPLE, parent_span.trace_state
    else:
        sampled = sampler.should_sample(
            parent_context, trace_id, name, SpanKind.CONSUMER, attributes, ()
        )
        decision, trace_state = sampled.decision, sampled.trace_state
        # The SDK's span takes the attributes the sampler returns (the standard samplers
        # return the ones they were given; one of a user's may add or take away some).
        if decision is not Decision.DROP and sampled.attributes != attributes:
            attributes, static = dict(sampled.attributes or {}), None
    flags = _OWN_FLAGS[decision in _SAMPLED, bool(random_trace_id)]
    span_id = tracer.id_generator.generate_span_id()
    if trace_state or not (0 < trace_id <= _MAX_TRACE_ID and 0 < span_id <= _MAX_SPAN_ID):
        context = SpanContext(trace_id, span_id, False, flags, trace_state)  # its own checks
    else:
        context = _span_context(trace_id, span_id, False, flags)
    recorder = tracer._tracer_metrics
    end_metrics = (
        None if type(recorder) is NoOpTracerMetrics else recorder.start_span(parent_span, decision)
    )
    if decision is Decision.DROP:  # RECORD_ONLY and RECORD_AND_SAMPLE record
        return NonRecordingSpan(context)
    return ConsumerSpan(
        name, context, parent_span, tracer, attributes, end_metrics, parent_context, static
    )


def _samples_remote_sampled(sampler: Any, parent: SpanContext) -> bool:
    """Whether ``sampler`` is the kit's default (:func:`default_sampler_breaker`), its breaker
    closed, and ``parent`` a sampled remote span: then its decision is known without asking
    it."""
    breaker = default_sampler_breaker(sampler)
    return (
        breaker is not None
        and parent.is_remote
        and parent.trace_flags.sampled
        and (breaker.open_until == 0.0 or breaker.closed())  # never failed, or closed again
    )
