"""The trace context of a task attempt: its parent, as the message carries it, and its own.

A version-00 ``traceparent`` alone (what the kit's producers send) is read directly, and for
the kit's default sampler under a sampled remote parent the attempt's own context is made
without asking the sampler (:func:`own_context`); anything else takes OpenTelemetry's own path
(the global propagator, the tracer's sampler). :mod:`project.telemetry.spans` and
:mod:`project.telemetry.attempt_span` make the span itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from project.telemetry.breaker import Breaker, BreakerSampler

__all__ = [
    "MAX_SPAN_ID",
    "MAX_TRACE_ID",
    "OWN_FLAGS",
    "default_sampler_breaker",
    "extract_parent",
    "own_context",
    "plain_parent",
    "samples_remote_sampled",
    "span_context",
]

# The W3C traceparent of version 00, as TraceContextTextMapPropagator accepts it.
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
MAX_TRACE_ID, MAX_SPAN_ID = 2**128 - 1, 2**64 - 1
#: What nearly every traceparent carries: sampled or not, with a random trace id or not (the
#: SDK's producers set both bits: "03").
_FLAGS = {f"{n:02x}": TraceFlags(n) for n in range(4)}


def span_context(trace_id: int, span_id: int, remote: bool, flags: TraceFlags) -> SpanContext:
    """``SpanContext(trace_id, span_id, remote, flags)`` for ids known to be valid (non-zero,
    in range) and no trace state: the tuple it builds, without its checks in Python."""
    made: SpanContext = tuple.__new__(
        SpanContext, (trace_id, span_id, remote, flags, DEFAULT_TRACE_STATE, True)
    )
    return made


#: An attempt's own flags by (sampled, random trace id), as Tracer.start_span computes them.
OWN_FLAGS = {
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
    return span_context(int(trace_id, 16), int(span_id, 16), True, trace_flags)


def own_context(
    parent: SpanContext, breaker: Breaker, new_span_id: Callable[[], int]
) -> SpanContext | None:
    """The context of an attempt's span under a sampled remote ``parent``, as the kit's
    default sampler (whose breaker is ``breaker``: :func:`default_sampler_breaker`) decides it
    without being asked; ``None`` when the parent is not sampled, the breaker is open, or the
    new id is not valid (then :func:`start_consumer_span` decides)."""
    flags = parent.trace_flags
    if not flags & TraceFlags.SAMPLED or not parent.is_remote or parent.trace_state:
        return None
    if breaker.open_until != 0.0 and not breaker.closed():
        return None
    span_id = new_span_id()
    if not 0 < span_id <= MAX_SPAN_ID:
        return None
    own = OWN_FLAGS[True, bool(flags & TraceFlags.RANDOM_TRACE_ID)]
    return span_context(parent.trace_id, span_id, False, own)


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


def samples_remote_sampled(sampler: Any, parent: SpanContext) -> bool:
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
