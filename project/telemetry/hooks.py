"""The kit's task telemetry: what it adds to ``opentelemetry-instrumentation-celery``.

The stock instrumentation makes the producer spans and carries the context in the message
headers; the kit makes each attempt's span (:mod:`project.telemetry.consumer`), so every workflow
step published from inside a task continues its trace. These hooks, called by the
:class:`~project.telemetry.middleware.Telemetry` middleware while that span is the current one,
add:

* on the publish and run spans of a workflow's step: ``workflow.id`` (project.workflows.canvas);
* on an aggregated task's run span: a link to each absorbed member's span
  (project.enqueue.aggregation);
* on each attempt's span (made by :mod:`project.telemetry.consumer` with the task's id, name,
  queue, priority, retry count and attempt number): the outcome;
* on a retried attempt: error status, the exception, and a ``task.retry`` event (the stock
  instrumentation leaves a retried attempt looking successful);
* the task metrics of :mod:`project.telemetry.metrics`, with bounded attributes;
* OpenTelemetry's messaging conventions on the publish and process spans, and their metrics
  (:mod:`project.telemetry.messaging`).

The pipeline calls them and never lets one raise: telemetry never fails a task.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.exceptions import Retry
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from project.broker.queues import PUBLISHED_AT_HEADER
from project.enqueue.aggregation import link_members
from project.telemetry.messaging import (
    MessagingMetrics,
    consumer_group,
    mark_send,
    process_attributes,
    queue_of,
    send_attributes,
)
from project.telemetry.metrics import TaskMetrics, task_attributes
from project.workflows.state import HEADER_WORKFLOW_ID

__all__ = ["TaskTelemetry"]

logger = logging.getLogger(__name__)


class TaskTelemetry:
    """The kit's task hooks for one process (made by ``setup_telemetry``)."""

    def __init__(
        self, metrics: TaskMetrics, messaging: MessagingMetrics, rename: bool = False
    ) -> None:
        self.metrics = metrics
        self.messaging = messaging
        self.rename = rename  # OTEL_SEMCONV_STABILITY_OPT_IN=messaging: the conventions' names
        # task id -> (attempt start, task name, queue): what the attempt's end records with
        self._started: dict[str, tuple[float, str, str]] = {}
        self._group: str | None = None  # this worker's consumer group, found on first use

    # -- producer ----------------------------------------------------------------------------

    def on_before_publish(
        self, sender: str, headers: dict[str, Any], routing_key: str | None = None
    ) -> None:
        _mark_workflow(headers.get(HEADER_WORKFLOW_ID))
        queue = str(routing_key or "unknown")
        span = trace.get_current_span()
        if span.is_recording():
            mark_send(span, queue, headers.get("id"), self.rename)
        self.messaging.sent.add(1, send_attributes(queue))  # every message, a retry's too
        if headers.get("retries"):
            return  # a retry's republish is counted by kit.tasks.retried, not as new work
        self.metrics.enqueued.add(1, task_attributes(str(sender), queue))

    # -- consumer ----------------------------------------------------------------------------

    def on_prerun(self, task: Any) -> None:
        """The attempt's metrics and marks; its span and the span's attributes were made by
        :class:`~project.telemetry.consumer.ConsumerTracing` as it started."""
        request = task.request
        name = str(task.name)
        now = time.time()
        queue = queue_of(request)
        self._started[str(request.id)] = (time.perf_counter(), name, queue)
        _mark_workflow(request.get(HEADER_WORKFLOW_ID))
        link_members(request)  # an aggregated task links to the members it absorbed
        if self._group is None:
            self._group = consumer_group(task.app, request.hostname)
        self.messaging.consumed.add(1, process_attributes(queue, self._group))
        published = request.get(PUBLISHED_AT_HEADER)
        if isinstance(published, int | float):
            ready_at = max(float(published), _eta_seconds(request.eta))
            self.metrics.queue_wait.record(max(0.0, now - ready_at), task_attributes(name, queue))

    def on_success(self, sender: Any) -> None:
        name, queue = self._finish(sender, "success")
        self.metrics.processed.add(1, task_attributes(name, queue))

    def on_retry(self, sender: Any, reason: Any) -> None:
        if isinstance(reason, Retry) and isinstance(reason.exc, BaseException):
            reason = reason.exc  # the error that caused the retry, not Celery's wrapper
        span = trace.get_current_span()
        exc_type = type(reason).__name__ if isinstance(reason, BaseException) else "Retry"
        if span.is_recording():
            if isinstance(reason, BaseException):
                span.record_exception(reason)
            span.add_event("task.retry", {"task.attempt": int(sender.request.retries or 0) + 1})
            span.set_status(Status(StatusCode.ERROR, f"retrying after {exc_type}"))
        name, queue = self._finish(sender, "retry", exc_type)
        self.metrics.retried.add(1, task_attributes(name, queue, "exception.type", exc_type))

    def on_failure(self, sender: Any, exception: Any) -> None:
        exc_type = type(exception).__name__ if exception is not None else "unknown"
        name, queue = self._finish(sender, "failure", exc_type)
        self.metrics.failed.add(1, task_attributes(name, queue, "exception.type", exc_type))

    def on_postrun(self, task: Any) -> None:
        self._started.pop(str(task.request.id), None)

    def _finish(self, task: Any, outcome: str, error_type: str | None = None) -> tuple[str, str]:
        """Record the attempt's duration and outcome; return its task name and queue (as
        ``on_prerun`` found them: the attributes are built once per task)."""
        request = task.request
        started = self._started.pop(str(request.id), None)
        if started is None:
            name, queue = str(task.name), queue_of(request)
        else:
            began, name, queue = started
            elapsed = time.perf_counter() - began
            self.metrics.duration.record(
                elapsed, task_attributes(name, queue, "task.outcome", outcome)
            )
            process = process_attributes(queue, self._group or "unknown", error_type)
            self.messaging.process_duration.record(elapsed, process)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("task.outcome", outcome)
        return name, queue


def _mark_workflow(workflow_id: Any) -> None:
    """``workflow.id`` on the current span (publish or run) of a workflow's step."""
    if workflow_id:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("workflow.id", str(workflow_id))


def _eta_seconds(eta: Any) -> float:
    if eta is None:
        return 0.0
    if isinstance(eta, str):
        from datetime import datetime

        try:
            return datetime.fromisoformat(eta).timestamp()
        except ValueError:
            return 0.0
    timestamp = getattr(eta, "timestamp", None)
    return float(timestamp()) if callable(timestamp) else 0.0
