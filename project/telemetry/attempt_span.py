"""A task attempt's span as a handful of facts, its attributes made by the export thread.

Why: measured in the worker (no-op tasks, this project's 2-CPU VM), making an attempt's
:class:`~project.telemetry.spans.ConsumerSpan` cost about 60 us on the task's thread (its
parent's context, its profile and attribute dict, the SDK span's fields, locks and processor
calls) where the same code runs in 10-15 in a tight loop: between one task and the next the
CPU runs the pool, Redis and the other processes, and the code and data an attempt touches are
cold again. The export thread works through a batch at a time, warm. So when nothing but the
kit's own export path can see the span (:func:`lean_target`), an attempt's span is an
:class:`AttemptSpan`: its ids, times, task, the request values its attributes are made from,
and the two values the kit sets as it ends (outcome, state). Ended, it is queued as it is;
:meth:`AttemptSpan.encoded` makes the attributes (the same profile and own attributes as
``ConsumerTracing``) and the same bytes the ``ConsumerSpan`` would have exported (a test
compares).

Anything else asked of it (an attribute, event, link or status set by the task, a failure, a
retry, a new name) first turns it into that ``ConsumerSpan`` (same ids, start, attributes),
which then carries on as usual: such attempts cost what they cost before.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from functools import partial
from time import time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import (
    _DEFAULT_OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT,
    ReadableSpan,
    SpanLimits,
    Tracer,
)
from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanContext, SpanKind
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util.types import Attributes

from project.telemetry.attempts import own_of, profile_of
from project.telemetry.breaker import Breaker
from project.telemetry.contexts import default_sampler_breaker
from project.telemetry.encoding import AttemptRecord, EncodedSpan, encode_record, encode_span
from project.telemetry.plans import plan_of
from project.telemetry.span_export import EncodingSpanProcessor
from project.telemetry.spans import ConsumerSpan

__all__ = ["KIT_SPANS", "AttemptSpan", "LeanTarget", "lean_target"]

_UNSET = Status(StatusCode.UNSET)
#: The fewest attributes a span may keep for the lean path: the SDK's default (128). An
#: attempt has a few dozen, so none is ever dropped; a lower limit (OTEL_SPAN_ATTRIBUTE_COUNT_
#: LIMIT, SpanLimits) takes the ConsumerSpan path, which drops them as the SDK does.
_FEWEST_ATTRIBUTES = _DEFAULT_OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT


class LeanTarget:
    """What an :class:`AttemptSpan` of one tracer needs: the tracer (to become a
    ``ConsumerSpan``), its resource and scope, the processor's queue, and the attribute
    options of ``ConsumerTracing`` (``omit``: names left out; ``rename``: the conventions'
    span name)."""

    __slots__ = (
        "breaker",
        "emit",
        "new_span_id",
        "omit",
        "processor",
        "rename",
        "resource",
        "scope",
        "tracer",
    )

    def __init__(
        self,
        tracer: Tracer,
        processor: EncodingSpanProcessor,
        breaker: Breaker,
        omit: frozenset[str],
        rename: bool,
    ) -> None:
        self.tracer = tracer
        self.breaker = breaker  # the default sampler's: an open one samples nothing
        # The SDK's random ids without its method around random.getrandbits (which retries a
        # zero: own_context refuses one, and the ConsumerSpan path makes the span then).
        generator = tracer.id_generator
        self.new_span_id: Callable[[], int] = (
            partial(random.getrandbits, 64)
            if type(generator) is RandomIdGenerator
            else generator.generate_span_id
        )
        self.processor = processor
        self.emit = processor._batch_processor.emit
        self.resource = tracer.resource
        self.scope = tracer._instrumentation_scope
        self.omit = omit
        self.rename = rename


def lean_target(tracer: Tracer, omit: frozenset[str], rename: bool) -> LeanTarget | None:
    """A target when the kit's export processor is the only one of the tracer's span
    processors that looks at a consumer's span (the others say they ignore it:
    ``ignores_consumer_spans``), the sampler is the kit's default, with the SDK's default
    limits and no tracer metrics;
    else ``None`` (every attempt a ``ConsumerSpan``). Worked out again whenever the provider's
    processors change (the caller keeps it per processor tuple)."""
    plan = plan_of(tracer.span_processor)
    if plan is None:
        return None
    seeing = [p for p in plan.processors if not getattr(p, "ignores_consumer_spans", False)]
    if len(seeing) != 1:
        return None
    (processor,) = seeing
    breaker = default_sampler_breaker(tracer.sampler)
    if (
        breaker is None
        or type(processor) is not EncodingSpanProcessor
        or processor in plan.starting
        or processor in plan.ending
        or type(tracer._tracer_metrics) is not NoOpTracerMetrics
        or not _default_limits(tracer._span_limits)
    ):
        return None
    return LeanTarget(tracer, processor, breaker, omit, rename)


def _default_limits(limits: SpanLimits) -> bool:
    """No value length limit, and room for every attribute an attempt has."""
    most = limits.max_span_attributes
    return limits.max_span_attribute_length is None and (most is None or most >= _FEWEST_ATTRIBUTES)


class AttemptSpan(trace.Span):
    """A sampled task attempt's span on the lean path (see the module's docstring)."""

    __slots__ = (
        "_context",
        "_end",
        "_facts",
        "_full",
        "_group",
        "_parent",
        "_puts",
        "_start",
        "_target",
        "_task",
        "_task_id",
    )

    def __init__(
        self,
        target: LeanTarget,
        context: SpanContext,
        parent: SpanContext,
        task: str,
        task_id: str,
        group: str,
        facts: tuple[Any, ...],
        start: int,
    ) -> None:
        self._target = target
        self._context = context
        self._parent = parent
        self._task = task
        self._task_id = task_id
        self._group = group
        self._facts = facts  # the request's values of REQUEST_KEYS
        self._start = start
        self._end: int | None = None
        self._puts: list[tuple[str, str]] | None = None  # outcome, state: as the kit sets them
        self._full: ConsumerSpan | None = None

    # -- what the lean path answers itself --------------------------------------------------

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        full = self._full
        return self._end is None if full is None else full.is_recording()

    def put_attribute(self, key: str, value: str) -> None:
        """As :meth:`ConsumerSpan.put_attribute` (a short ``str`` the kit made)."""
        full = self._full
        if full is not None:
            full.put_attribute(key, value)
        elif self._end is None:
            puts = self._puts
            if puts is None:
                self._puts = [(key, value)]
            else:
                puts.append((key, value))

    def end(self, end_time: int | None = None) -> None:
        full = self._full
        if full is not None:
            full.end(end_time)
            return
        if self._end is not None:
            return
        self._end = end_time if end_time is not None else time_ns()
        self._target.emit(self)  # type: ignore[arg-type]

    # -- anything else: the full span ---------------------------------------------------------

    def full(self) -> ConsumerSpan:
        """The ``ConsumerSpan`` this attempt is from now on (made on first call). An attempt
        ended and queued lean gets one that is not queued again: ended, it refuses changes
        with the SDK's warning."""
        full = self._full
        if full is None:
            profile, attributes = self._attributes()
            target = self._target
            full = ConsumerSpan(
                profile.span_name,
                self._context,
                self._parent,
                target.tracer,
                attributes,
                None,
                None,
                profile.static,
            )
            full._start_time = self._start
            for key, value in self._puts or ():
                full.put_attribute(key, value)
            if self._end is not None:  # already queued as it is: ended, not queued again
                full._end_time = self._end
                full._bounded._immutable = True
            self._full = full
        return full

    def set_attribute(self, key: str, value: Any) -> None:
        self.full().set_attribute(key, value)

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        self.full().set_attributes(attributes)

    def add_event(
        self, name: str, attributes: Attributes = None, timestamp: int | None = None
    ) -> None:
        self.full().add_event(name, attributes, timestamp)

    def add_link(self, context: SpanContext, attributes: Attributes = None) -> None:
        self.full().add_link(context, attributes)

    def update_name(self, name: str) -> None:
        self.full().update_name(name)

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        self.full().set_status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        self.full().record_exception(exception, attributes, timestamp, escaped)

    # -- on the export thread ------------------------------------------------------------------

    def _attributes(self) -> tuple[Any, dict[str, Any]]:
        """The attempt's profile, and its attributes as ``ConsumerTracing`` makes them."""
        target = self._target
        profile = profile_of(self._task, self._facts, self._group, target.omit, target.rename)
        return profile, {**profile.shared, **own_of(self._task_id, self._facts, target.omit)}

    def encoded(self, drop: frozenset[str]) -> EncodedSpan:
        """The span redacted and encoded, as the ``ConsumerSpan`` would have been.

        What an attempt shares with every attempt of its kind is encoded already (its
        profile's static block), so only its own attributes and what the kit put on it are
        gathered here, in the order the full attribute dict would hold them; the dict itself
        is made only when the block cannot be used."""
        target = self._target
        profile = profile_of(self._task, self._facts, self._group, target.omit, target.rename)
        own = own_of(self._task_id, self._facts, target.omit)
        puts = self._puts or ()
        for key, value in puts:
            own.pop(key, None)  # a value set again goes last, as the SDK's span does
            own[key] = value
        static = profile.static
        end = self._end
        assert end is not None  # queued as it ended
        # The shared block stands for the first attributes only if nothing of the attempt's
        # own (nor anything put on it) would replace one of them.
        if static is not None and drop.isdisjoint(static.keys) and static.keys.isdisjoint(own):
            record: AttemptRecord = (
                target.resource,
                target.scope,
                static,
                profile.span_name,
                self._context.trace_id,
                self._context.span_id,
                self._parent.span_id,
                True,  # the parent is remote: the producer's span
                self._start,
                end,
                tuple(own.items()),
                _UNSET,
            )
            return target.resource, target.scope, encode_record(record, drop)
        _, attributes = self._attributes()
        for key, value in puts:
            attributes.pop(key, None)
            attributes[key] = value
        readable = ReadableSpan(
            name=profile.span_name,
            context=self._context,
            parent=self._parent,
            resource=target.resource,
            attributes=attributes,
            kind=SpanKind.CONSUMER,
            instrumentation_scope=target.scope,
            status=_UNSET,
            start_time=self._start,
            end_time=end,
        )
        return target.resource, target.scope, encode_span(readable, drop)


#: The span classes whose ``put_attribute`` the kit calls for the values it sets itself.
KIT_SPANS = (ConsumerSpan, AttemptSpan)
