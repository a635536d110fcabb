"""The span of each task attempt, made by the kit: the stock instrumentation's consumer side,
in one step per attempt.

``opentelemetry-instrumentation-celery`` makes the worker's span from four signal receivers
(``task_prerun``, ``task_postrun``, ``task_failure``, ``task_retry``): it extracts the parent
through the propagator API, starts an SDK span, attaches two contexts, and at the end sets each
``celery.*`` attribute on its own (each validated under the span's lock). With the kit's hooks
adding a dozen more, a no-op task paid about 190 us for its span, measured in the worker,
where telemetry had to cost a tenth of that to stay within 5 % of a task's time.

:class:`ConsumerTracing` replaces those four receivers (the publish side, the
``apply_async/<task>`` spans and the context injected into every message, is
:class:`~project.telemetry.producer.ProducerTracing`'s) and makes the same
span: name ``run/<task>`` (``process <queue>`` under ``OTEL_SEMCONV_STABILITY_OPT_IN=messaging``),
kind CONSUMER, the stock instrumentation's scope, the stock ``celery.*`` attributes with their
values, a failure's exception event and error status, a retry's ``celery.retry.reason``. It
adds, in the same dict, what the kit's hooks used to set one by one: the task's ``task.*``
attributes and OpenTelemetry's messaging attributes (:mod:`project.telemetry.messaging`).
``instrument``/``uninstrument`` are symmetric: the stock receivers come back on uninstrument.

The same two receivers record the attempt's metrics (:meth:`TaskTelemetry.begin
<project.telemetry.hooks.TaskTelemetry.begin>` and ``end``), with what they have already read
from the request: a middleware hook per step would read it again, three times per attempt.
What every attempt of one kind shares is worked out once (:mod:`project.telemetry.attempts`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import Token
from time import time_ns
from typing import TYPE_CHECKING, Any

from billiard.einfo import ExceptionInfo, ExceptionWithTraceback
from celery import signals
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Tracer
from opentelemetry.trace import Status, StatusCode
from opentelemetry.trace.propagation import _SPAN_KEY

from project.telemetry.attempt_span import KIT_SPANS, AttemptSpan, LeanTarget, lean_target
from project.telemetry.attempts import REQUEST_KEYS, own_attributes, profile_for, request_values
from project.telemetry.contexts import extract_parent, own_context, plain_parent
from project.telemetry.messaging import OLD_ATTRIBUTES, consumer_group, queue_in
from project.telemetry.spans import start_consumer_span
from project.telemetry.stock import (
    STOCK_SCHEMA,
    STOCK_SCOPE,
    Receivers,
    replace_stock,
    restore_stock,
)

if TYPE_CHECKING:
    from project.telemetry.hooks import TaskTelemetry

__all__ = ["ConsumerTracing"]

logger = logging.getLogger(__name__)

#: The signals Celery's tracer sends for every attempt. Celery's ``Signal.send`` works out
#: its live receivers on every call (a lock, the sender's id, a new list) unless the signal
#: caches them per sender, which its own signals do not ask for; the kit turns that on while
#: its receivers are connected (Celery clears the cache whenever a receiver is connected or
#: disconnected, and bypasses it once a weakly held receiver has died), half the cost of a
#: send. The cache holds each sender (a task: alive as long as its app anyway) until
#: ``uninstrument``.
_PER_ATTEMPT = (signals.task_prerun, signals.task_postrun)


class ConsumerTracing:
    """The worker-side receivers for one process (made by ``setup_telemetry``).

    ``tracer_provider``: the SDK provider spans are made with; ``None`` when nothing is
    exported, where the message's trace context is still made current during the task, so
    what the task publishes continues the caller's trace (as the stock receivers do with
    OpenTelemetry's no-op tracer).
    """

    def __init__(
        self,
        instrumentor: Any,
        tracer_provider: Any = None,
        rename: bool = False,
        hooks: TaskTelemetry | None = None,
    ) -> None:
        from opentelemetry.instrumentation.celery.version import __version__

        self.instrumentor = instrumentor
        self.rename = rename
        self.hooks = hooks  # the attempt's metrics, recorded as its span starts and ends
        # Under the new conventions only, the old names are not set at all (not set and then
        # dropped at export).
        self._omit = OLD_ATTRIBUTES if rename else frozenset()
        self._tracer: Tracer | None = None
        if tracer_provider is not None:
            tracer = tracer_provider.get_tracer(STOCK_SCOPE, __version__, schema_url=STOCK_SCHEMA)
            self._tracer = tracer if isinstance(tracer, Tracer) else None
        # task id -> (span, context token) while the attempt runs on this process
        self._running: dict[str, tuple[trace.Span, Token[Context]]] = {}
        self._group: str | None = None  # this worker's consumer group, found on first use
        self._instrumented = False
        self._cached: list[Any] = []  # the per-attempt signals whose caching the kit turned on
        # The lean path's target, for the provider's processor tuple it was worked out for.
        self._lean: LeanTarget | None = None
        self._lean_for: Any = ()

    # -- instrument / uninstrument ---------------------------------------------------------

    def instrument(self) -> None:
        """Take the stock consumer receivers out and connect the kit's (idempotent)."""
        if self._instrumented:
            return
        replace_stock(self.instrumentor, self._receivers())
        for signal in _PER_ATTEMPT:
            if not signal.use_caching:
                signal.sender_receivers_cache.clear()
                signal.use_caching = True
                self._cached.append(signal)
        self._instrumented = True

    def uninstrument(self) -> None:
        """Disconnect the kit's receivers; the stock ones come back if the stock
        instrumentation is still on."""
        if not self._instrumented:
            return
        restore_stock(self.instrumentor, self._receivers())
        for signal in self._cached:
            signal.use_caching = False
            signal.sender_receivers_cache.clear()  # no sender held any longer
        self._cached.clear()
        self._running.clear()
        self._instrumented = False

    def _receivers(self) -> Receivers:
        return (
            (signals.task_prerun, "_trace_prerun", self._prerun),
            (signals.task_postrun, "_trace_postrun", self._postrun),
            (signals.task_failure, "_trace_failure", self._failure),
            (signals.task_retry, "_trace_retry", self._retry),
        )

    # -- receivers (a receiver that raised would fail nothing, but log; none should) ---------

    # The signals' arguments are named in full: no dict of the rest is made per attempt.
    def _prerun(
        self,
        sender: Any = None,
        task_id: Any = None,
        task: Any = None,
        args: Any = None,
        kwargs: Any = None,
        signal: Any = None,
        **_: Any,
    ) -> None:
        if task is None or task_id is None:
            return
        try:
            self._start(task, str(task_id))
        except Exception:
            logger.debug("task span not started", exc_info=True)

    def _start(self, task: Any, task_id: str) -> None:
        request = task.request
        values = request_values(request)
        tracer = self._tracer
        if tracer is not None and (lean := self._lean_span(tracer, task, task_id, values)):
            span: trace.Span = lean
            queue = queue_in(values.get("delivery_info"))
            current = Context({_SPAN_KEY: span})
        else:
            parent, parent_span = extract_parent(request, values)
            if tracer is None:  # nothing exported: only the caller's context, made current
                if parent is not None:
                    self._running[task_id] = (trace.INVALID_SPAN, context_api.attach(parent))
                return
            profile = profile_for(task.name, values, self._group_of(task), self._omit, self.rename)
            attributes = {**profile.shared, **own_attributes(task_id, values, self._omit)}
            span = start_consumer_span(
                tracer, profile.span_name, parent, parent_span, attributes, profile.static
            )
            queue = profile.queue
            # The span made current in the message's context (set_span_in_context without the
            # copy when that context holds nothing else: the fast path's parent span only).
            if parent is not None and len(parent) == 1 and _SPAN_KEY in parent:
                current = Context({_SPAN_KEY: span})
            else:
                current = trace.set_span_in_context(span, parent)
        token = context_api.attach(current)
        self._running[task_id] = (span, token)
        if self.hooks is not None:
            try:
                self.hooks.begin(values, task_id, task.name, queue, self._group_of(task), span)
            except Exception:  # the metrics only: the span is made and current
                logger.debug("attempt metrics not recorded", exc_info=True)

    def _group_of(self, task: Any) -> str:
        group = self._group
        if group is None:
            group = self._group = consumer_group(task.app, task.request.hostname)
        return group

    def _lean_span(
        self, tracer: Tracer, task: Any, task_id: str, values: Mapping[str, Any]
    ) -> AttemptSpan | None:
        """The attempt's span on the lean path (:mod:`project.telemetry.attempt_span`): a
        sampled remote parent in a plain ``traceparent``, the kit's default sampler, and only
        the kit's export processor behind the tracer; ``None``: the ``ConsumerSpan`` path."""
        processors = getattr(tracer.span_processor, "_span_processors", None)
        if processors is not self._lean_for:  # the provider's processors changed (or first use)
            self._lean_for = processors
            self._lean = lean_target(tracer, self._omit, self.rename)
        target = self._lean
        if target is None or not tracer._is_enabled():
            return None
        parent = plain_parent(values)
        if parent is None:
            return None
        context = own_context(parent, target.breaker, target.new_span_id)
        if context is None:
            return None
        facts = tuple(map(values.get, REQUEST_KEYS))
        return AttemptSpan(
            target, context, parent, task.name, task_id, self._group_of(task), facts, time_ns()
        )

    def _postrun(
        self,
        sender: Any = None,
        task_id: Any = None,
        task: Any = None,
        args: Any = None,
        kwargs: Any = None,
        retval: Any = None,
        state: Any = None,
        signal: Any = None,
        **_: Any,
    ) -> None:
        entry = self._running.pop(str(task_id), None) if task_id is not None else None
        if entry is None:
            return
        span, token = entry
        if self.hooks is not None:
            try:
                self.hooks.end(str(task_id), state, span)
            except Exception:  # the metrics only: the span still ends below
                logger.debug("attempt metrics not recorded", exc_info=True)
        try:
            if state is not None and state != "":
                if type(span) in KIT_SPANS:
                    span.put_attribute("celery.state", str(state))  # type: ignore[attr-defined]
                elif span.is_recording():
                    span.set_attribute("celery.state", state)
            span.end()
        except Exception:
            logger.debug("task span not ended", exc_info=True)
        finally:
            context_api.detach(token)

    def _failure(
        self, sender: Any = None, task_id: Any = None, einfo: Any = None, **_: Any
    ) -> None:
        entry = self._running.get(str(task_id)) if task_id is not None else None
        if entry is None or not entry[0].is_recording():
            return
        span = entry[0]
        error = einfo
        throws = getattr(sender, "throws", None)
        if throws and error is not None and isinstance(getattr(error, "exception", None), throws):
            return  # an expected error (Task.throws): not a failed span
        description = None
        if error is not None:
            if isinstance(error, ExceptionInfo) and error.exception is not None:
                error = error.exception
            if isinstance(error, ExceptionWithTraceback) and error.exc is not None:
                error = error.exc
            description = str(error)
            if isinstance(error, BaseException):
                span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, description))

    def _retry(self, sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
        task_id = getattr(request, "id", None)
        entry = self._running.get(str(task_id)) if task_id is not None and reason else None
        if entry is not None and entry[0].is_recording():
            entry[0].set_attribute("celery.retry.reason", str(reason))
