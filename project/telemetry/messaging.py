"""OpenTelemetry's messaging semantic conventions (v1.44) on the kit's spans and metrics.

The stock Celery instrumentation names spans ``apply_async/<task>`` and ``run/<task>`` and sets
the conventions' old attributes (``messaging.destination``, ``messaging.destination_kind``,
``messaging.conversation_id``); backends build their queue views on the current ones. The kit's
hooks add them to the stock spans (queue as destination, task id as message id, the worker's
queue set as consumer group) and record the conventions' metrics beside the ``kit.*`` ones,
which dashboards and alerts keep using.

``OTEL_SEMCONV_STABILITY_OPT_IN`` (see :mod:`project.telemetry.settings`): ``messaging`` names
the spans ``send <queue>``/``process <queue>`` and drops the old attributes at export;
``messaging/dup`` or unset keeps the stock names and old attributes too (a span has one name,
so the stock one stays while anything still searches by it). The ``celery.*`` attributes are
the stock instrumentation's and stay in both modes.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import Meter
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import Span as ApiSpan
from opentelemetry.trace import SpanKind

from project.telemetry.histograms import HistogramRegistry
from project.telemetry.metrics import Tally, seconds_histogram

__all__ = [
    "MESSAGING_METRIC_NAMES",
    "OLD_ATTRIBUTES",
    "SYSTEM",
    "MessagingMetrics",
    "OperationDurationProcessor",
    "consumer_group",
    "mark_send",
    "process_attributes",
    "queue_in",
    "queue_of",
    "send_attributes",
]

SYSTEM = "redis"  # the broker: messages are Redis lists (Celery is the client library)
#: The pre-1.26 attributes the stock instrumentation sets; dropped under ``messaging``.
OLD_ATTRIBUTES = frozenset(
    {"messaging.destination", "messaging.destination_kind", "messaging.conversation_id"}
)
MESSAGING_METRIC_NAMES = (
    "messaging.client.sent.messages",
    "messaging.client.consumed.messages",
    "messaging.process.duration",
    "messaging.client.operation.duration",
)


class MessagingMetrics:
    """The conventions' instruments (attributes: operation name, system, destination,
    consumer group, error type: all bounded)."""

    def __init__(self, meter: Meter, histograms: HistogramRegistry) -> None:
        self.sent = Tally(meter, "messaging.client.sent.messages", "{message}", "Messages sent")
        self.consumed = Tally(
            meter,
            "messaging.client.consumed.messages",
            "{message}",
            "Messages delivered to a task",
        )
        self.process_duration = seconds_histogram(
            histograms,
            "messaging.process.duration",
            "Time a task attempt took to process its message",
        )
        self.operation_duration = seconds_histogram(
            histograms, "messaging.client.operation.duration", "Time a publish took"
        )


@lru_cache(maxsize=256)  # a handful of queues: built once, not per message (never mutated)
def send_attributes(queue: str) -> dict[str, str]:
    return {
        "messaging.operation.name": "send",
        "messaging.system": SYSTEM,
        "messaging.destination.name": queue,
    }


@lru_cache(maxsize=256)
def process_attributes(queue: str, group: str, error_type: str | None = None) -> dict[str, str]:
    """``error_type``: an attempt that did not succeed (its exception's type)."""
    attributes = {
        "messaging.operation.name": "process",
        "messaging.system": SYSTEM,
        "messaging.destination.name": queue,
        "messaging.consumer.group.name": group,
    }
    if error_type is not None:
        attributes["error.type"] = error_type
    return attributes


def mark_send(span: ApiSpan, queue: str, message_id: Any, rename: bool) -> None:
    """The producer span of one publish (``send``: one message, no separate ``create``)."""
    span.set_attributes(
        {
            **send_attributes(queue),
            "messaging.operation.type": "send",
            "messaging.message.id": str(message_id or ""),
        }
    )
    if rename:
        span.update_name(f"send {queue}")


def queue_of(request: Any) -> str:
    """The queue a task's message came from (its delivery's routing key)."""
    return queue_in(getattr(request, "delivery_info", None))


def queue_in(delivery: Any) -> str:
    """The queue a message's ``delivery_info`` names (``unknown`` without a routing key)."""
    return str((delivery or {}).get("routing_key") or "unknown")


def consumer_group(app: Any, hostname: Any) -> str:
    """The queues this worker consumes, sorted and comma-joined (workers with the same set
    compete for the same messages); the node name when the set is unknown."""
    try:
        queues = app.amqp.queues
        names = sorted(queues.consume_from or queues)
    except Exception:
        names = []
    return ",".join(str(n) for n in names) if names else str(hostname or "unknown")


class OperationDurationProcessor(SpanProcessor):
    """``messaging.client.operation.duration`` of each publish, from its producer span (the
    kit has no hook after the publish; the span times exactly the operation)."""

    #: Its hooks return at once for any span but a producer's: a task attempt's span may skip
    #: it (:func:`~project.telemetry.attempt_span.lean_target`).
    ignores_consumer_spans = True

    def __init__(self, metrics: MessagingMetrics) -> None:
        self.metrics = metrics

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if span.kind is not SpanKind.PRODUCER:
            return  # every attempt's span ends here too: one comparison, not a dict lookup
        attributes = span.attributes or {}
        if attributes.get("messaging.operation.type") != "send":
            return
        if span.start_time is None or span.end_time is None:
            return
        queue = str(attributes.get("messaging.destination.name", "unknown"))
        elapsed = (span.end_time - span.start_time) / 1e9
        self.metrics.operation_duration.record(elapsed, send_attributes(queue))

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
