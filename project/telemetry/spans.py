"""The span object of a task attempt, made by the kit in one step (see
:mod:`project.telemetry.consumer`; its parent and own context come from
:mod:`project.telemetry.contexts`, its attributes from :mod:`project.telemetry.attempts`).

Why not ``Tracer.start_span``: an SDK span costs about 30 us to start and end with no
attribute, 60 us with a task's 22 (each validated and copied under a lock, a read-only copy
made at the end), on the same CPUs as the tasks. :class:`ConsumerSpan` is the SDK's own
``Span`` class (its methods, processors, exporters and user code's ``set_attribute`` work as
before) made without its constructor's per-attribute work, following ``Tracer.start_span`` line
by line: the tracer's sampler, ids, processors and limits (a limit below what the kit sets
takes the SDK's own path).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from time import time_ns
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Span, SpanLimits, Tracer
from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceState
from opentelemetry.trace.status import Status, StatusCode

from project.telemetry.contexts import (
    MAX_SPAN_ID,
    MAX_TRACE_ID,
    OWN_FLAGS,
    samples_remote_sampled,
    span_context,
)
from project.telemetry.plans import plan_of

if TYPE_CHECKING:
    from project.telemetry.attempts import StaticAttributes

__all__ = ["ConsumerSpan", "start_consumer_span"]

_UNSET = Status(StatusCode.UNSET)
_SAMPLED = (Decision.RECORD_AND_SAMPLE,)
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
    if parent_span is not None and samples_remote_sampled(sampler, parent_span):
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
    flags = OWN_FLAGS[decision in _SAMPLED, bool(random_trace_id)]
    span_id = tracer.id_generator.generate_span_id()
    if trace_state or not (0 < trace_id <= MAX_TRACE_ID and 0 < span_id <= MAX_SPAN_ID):
        context = SpanContext(trace_id, span_id, False, flags, trace_state)  # its own checks
    else:
        context = span_context(trace_id, span_id, False, flags)
    recorder = tracer._tracer_metrics
    end_metrics = (
        None if type(recorder) is NoOpTracerMetrics else recorder.start_span(parent_span, decision)
    )
    if decision is Decision.DROP:  # RECORD_ONLY and RECORD_AND_SAMPLE record
        return NonRecordingSpan(context)
    return ConsumerSpan(
        name, context, parent_span, tracer, attributes, end_metrics, parent_context, static
    )
