"""The span of each publish, made by the kit: the stock instrumentation's producer side, in one
step per publish.

``opentelemetry-instrumentation-celery`` makes the producer's ``apply_async/<task>`` span from
two signal receivers (``before_task_publish``, ``after_task_publish``): it looks the task up in
the default app's registry (twice), starts an SDK span and then sets each attribute on its own
(each validated under the span's lock), walks its list of nineteen Celery context keys over
the signal's arguments, activates the span through a context manager it stores on the task
object, and injects the context. Measured with telemetry on, that was about a fifth of a plain
``apply_async`` (``python -m benchmarks enqueue``: 1,833/s against 2,968/s with telemetry off).

:class:`ProducerTracing` replaces those two receivers and makes the same span: name
``apply_async/<task>``, kind PRODUCER, the stock instrumentation's scope, its attributes with
their values (the part that depends on the signal's exchange, routing key and declared queues
worked out once per combination, with the stock helper itself), current while the message is
published (the kit's own publish hook adds the messaging attributes to it, and a receiver
connected after it sees it, as with the stock receivers), its context injected into the
message's headers. Unlike the stock receivers it also ends the span of a task its registry
does not know (a ``send_task`` by name), which the stock ``after_task_publish`` left open, and
it closes a publish that never got its ``after_task_publish``, which the stock receivers left
open and current for good (and kept, one per failed publish: a Redis outage grew them without
bound): a publish made again after a lost round trip (the same task, the same thread) has one
span and leaves the caller's context as it found it; one that raised to its caller (Celery
sends no signal for that) is ended with an error status when its thread next publishes, so
one publish per thread is open at a time. Until then its span stays current, as with the
stock receivers. (A task published from inside a ``before_task_publish`` receiver would end
the outer publish's span early; nothing does that.)
``instrument``/``uninstrument`` are symmetric: the stock receivers come back on uninstrument.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from contextvars import Token
from typing import Any

from celery import signals
from opentelemetry import context as context_api
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from project.telemetry.stock import (
    STOCK_SCHEMA,
    STOCK_SCOPE,
    Receivers,
    replace_stock,
    restore_stock,
)

__all__ = ["ProducerTracing"]

logger = logging.getLogger(__name__)

#: What the stock receiver sets first (``celery.action``, ``messaging.message.id``,
#: ``celery.task_name``) comes before the attributes of the signal's arguments, as there.
_ACTION = "celery.action"
_MESSAGE_ID = "messaging.message.id"
_TASK_NAME = "celery.task_name"


class _Collector:
    """Stands in for a span to collect what the stock helper would set on one, in order."""

    def __init__(self) -> None:
        self.attributes: dict[str, Any] = {}

    def is_recording(self) -> bool:
        return True

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value


def _stock_attributes(context: Mapping[str, Any]) -> dict[str, Any]:
    """What the stock helper sets on a span from the signal's arguments ``context``."""
    from opentelemetry.instrumentation.celery import utils

    collector = _Collector()
    utils.set_attributes_from_context(collector, context)  # type: ignore[arg-type]
    return collector.attributes


def _declared(declare: Any) -> tuple[str, ...] | None:
    """The exchange types of the declared queues (all the stock helper reads of them), or None
    when they are not queue objects (then nothing is remembered)."""
    if not declare:
        return ()
    try:
        return tuple(str(queue.exchange.type) for queue in declare)
    except (AttributeError, TypeError):
        return None


class ProducerTracing:
    """The publish-side receivers for one process (made by ``setup_telemetry``)."""

    def __init__(self, instrumentor: Any, tracer_provider: Any) -> None:
        from opentelemetry.instrumentation.celery.version import __version__

        self.instrumentor = instrumentor
        self._tracer = tracer_provider.get_tracer(STOCK_SCOPE, __version__, schema_url=STOCK_SCHEMA)
        # thread -> (task id, span, context token) between the two signals of its publish
        self._open: dict[int, tuple[str, trace.Span, Token[Context]]] = {}
        # (exchange, routing key, declared exchange types) -> the attributes they give
        self._from_arguments: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._instrumented = False

    # -- instrument / uninstrument ---------------------------------------------------------

    def instrument(self) -> None:
        """Take the stock publish receivers out and connect the kit's (idempotent). The kit's
        own publish receiver must come after it: ``celery_hooks.move_publish_receiver_last``."""
        if self._instrumented:
            return
        replace_stock(self.instrumentor, self._receivers())
        self._instrumented = True

    def uninstrument(self) -> None:
        """Disconnect the kit's receivers; the stock ones come back if the stock
        instrumentation is still on."""
        if not self._instrumented:
            return
        restore_stock(self.instrumentor, self._receivers())
        self._open.clear()
        self._instrumented = False

    def _receivers(self) -> Receivers:
        return (
            (signals.before_task_publish, "_trace_before_publish", self._before),
            (signals.after_task_publish, "_trace_after_publish", self._after),
        )

    # -- receivers (a receiver that raised would fail nothing, but log; none should) ---------

    def _before(
        self,
        sender: Any = None,
        body: Any = None,
        exchange: Any = None,
        routing_key: Any = None,
        headers: Any = None,
        properties: Any = None,
        declare: Any = None,
        retry_policy: Any = None,
        signal: Any = None,
        **rest: Any,
    ) -> None:
        task_id = _task_id(headers, body)
        if task_id is None:
            return
        thread, key = threading.get_ident(), str(task_id)
        abandoned = self._open.pop(thread, None)
        if abandoned is not None:
            _abandon(abandoned[1], abandoned[2], again=abandoned[0] == key)
        try:
            span, token = self._start(
                str(sender or "unknown"), task_id, exchange, routing_key, declare, rest
            )
        except Exception:
            logger.debug("publish span not started", exc_info=True)
            return
        self._open[thread] = (key, span, token)
        if headers:
            propagate.inject(headers)

    def _start(
        self,
        name: str,
        task_id: Any,
        exchange: Any,
        routing_key: Any,
        declare: Any,
        rest: Mapping[str, Any],
    ) -> tuple[trace.Span, Token[Context]]:
        """The publish's span, started and made current (and the token that undoes that)."""
        attributes = {_ACTION: "apply_async", _MESSAGE_ID: task_id, _TASK_NAME: name}
        attributes.update(self._argument_attributes(exchange, routing_key, declare, rest))
        span = self._tracer.start_span(
            f"apply_async/{name}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        return span, context_api.attach(trace.set_span_in_context(span))

    def _argument_attributes(
        self, exchange: Any, routing_key: Any, declare: Any, rest: Mapping[str, Any]
    ) -> dict[str, Any]:
        """What the stock helper sets from the signal's arguments: for Celery's own arguments,
        a function of the exchange, the routing key and the declared queues' exchange types."""
        arguments = {"exchange": exchange, "routing_key": routing_key, "declare": declare}
        types = _declared(declare)
        if rest or types is None or not isinstance(exchange, str | None):
            return _stock_attributes({**arguments, **rest})
        key = (exchange, routing_key, types)
        found = self._from_arguments.get(key)
        if found is None:
            found = _stock_attributes(arguments)
            if len(self._from_arguments) < 1024:  # a handful of queues in practice
                self._from_arguments[key] = found
        return found

    def _after(self, body: Any = None, headers: Any = None, **_: Any) -> None:
        task_id = _task_id(headers, body)
        if task_id is None:
            return
        thread = threading.get_ident()
        entry = self._open.get(thread)
        if entry is None or entry[0] != str(task_id):
            return
        del self._open[thread]
        span, token = entry[1], entry[2]
        try:
            context_api.detach(token)
        finally:
            span.end()


def _abandon(span: trace.Span, token: Token[Context], *, again: bool) -> None:
    """A publish of this thread that got no ``after_task_publish``, found as the thread's next
    publish begins. ``again``: the same task is being published again, after a lost round trip
    (the direct path falls back to Celery's): one message, one span, so the first is dropped
    unended (never exported). Otherwise the publish raised to its caller: its span ends with
    an error status. Either way its context stops being current, unless the caller's own scope
    (a web request's, say) already put its own back."""
    if trace.get_current_span() is span:
        context_api.detach(token)
    if not again:
        span.set_status(Status(StatusCode.ERROR, "publish did not complete"))
        span.end()


def _task_id(headers: Any, body: Any) -> Any:
    """The published task's id: protocol 2's header, else protocol 1's body (as the stock
    instrumentation reads it)."""
    if headers:
        return headers.get("id")
    if isinstance(body, Mapping):
        return body.get("id")
    return None
