"""The kit's task telemetry: what it adds to ``opentelemetry-instrumentation-celery``.

The stock instrumentation makes the producer spans and carries the context in the message
headers; the kit makes each attempt's span (:mod:`project.telemetry.consumer`), so every workflow
step published from inside a task continues its trace. These hooks add, called by that
receiver as each attempt's span starts and ends (``begin``, ``end``: no middleware call, no
request read again, the series each attempt records in held, not looked up by attribute set)
and by the :class:`~project.telemetry.middleware.Telemetry` middleware (publish, retry,
failure):

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

The pipeline and the receiver call them and never let one raise: telemetry never fails a task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from celery.exceptions import Retry
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from project.broker.queues import PUBLISHED_AT_HEADER
from project.enqueue.aggregation import HEADER_LINKS, link_members
from project.telemetry.attempt_log import DRAIN_AT, AttemptLog, AttemptSeries
from project.telemetry.attempt_span import KIT_SPANS
from project.telemetry.histograms import Stamp
from project.telemetry.messaging import (
    MessagingMetrics,
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
        # task id -> (attempt start, task name, queue, its series, its exemplars' ids): what
        # the attempt's end records with
        self._started: dict[str, tuple[float, str, str, AttemptSeries, Stamp | None]] = {}
        self._group: str | None = None  # this worker's consumer group, found on first use
        self._series: dict[tuple[str, str], AttemptSeries] = {}  # by (task name, queue)
        # An attempt's five measurements, logged and recorded before each collection.
        self.log = AttemptLog(
            metrics.queue_wait,
            metrics.duration,
            messaging.process_duration,
            messaging.consumed,
            metrics.processed,
        )
        # Whatever collects first (the histograms' exporter, the counters' callbacks) drains.
        metrics.histograms.before_collect.append(self.log.drain)
        for tally in (messaging.consumed, metrics.processed):
            tally.before_observe = self.log.drain

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

    def begin(
        self, values: Mapping[str, Any], task_id: str, name: str, queue: str, group: str, span: Any
    ) -> None:
        """An attempt starts: called by :class:`~project.telemetry.consumer.ConsumerTracing`
        once the attempt's span (``span``) is the current one, its attributes made
        (``values``: what its request holds, read once)."""
        self._group = group
        series = self._series.get((name, queue)) or self._series_of(name, queue)
        stamp = self.metrics.duration.stamp(span.get_span_context())  # its exemplars' ids
        self._started[task_id] = (time.perf_counter(), name, queue, series, stamp)
        if values.get(HEADER_WORKFLOW_ID):
            _mark_workflow(values[HEADER_WORKFLOW_ID])
        if values.get(HEADER_LINKS):
            link_members(values)  # an aggregated task links to the members it absorbed
        published = values.get(PUBLISHED_AT_HEADER)
        wait = None
        now = time.time()
        if type(published) is float or type(published) is int:
            eta = values.get("eta")
            ready_at = published if eta is None else max(published, _eta_seconds(eta))
            wait = now - ready_at
            if wait < 0:
                wait = 0.0
        started = series.started
        # Consumed, and its queue wait: recorded in a batch, with the time measured.
        started.append((wait, stamp, int(now * 1e9)))
        if len(started) >= DRAIN_AT:
            self.log.drain_series(series)

    def end(self, task_id: str, state: Any, span: Any) -> None:
        """An attempt ends (``span``: its span, still current): a success is logged here; a
        retry or a failure was recorded by ``on_retry``/``on_failure``, which hold the error;
        an attempt that was ignored or rejected records nothing."""
        started = self._started.pop(task_id, None)
        if started is None or state != "SUCCESS":
            return
        series = started[3]
        ended = series.ended
        ended.append((time.perf_counter() - started[0], started[4], time.time_ns()))
        if len(ended) >= DRAIN_AT:
            self.log.drain_series(series)
        if type(span) in KIT_SPANS:
            span.put_attribute("task.outcome", "success")
        elif span.is_recording():
            span.set_attribute("task.outcome", "success")

    def _series_of(self, name: str, queue: str) -> AttemptSeries:
        """The series an attempt of ``name`` from ``queue`` counts in, found once."""
        attributes = task_attributes(name, queue)
        process = process_attributes(queue, self._group or "unknown")
        found = AttemptSeries(
            consumed=self.messaging.consumed.entry(process),
            wait=self.metrics.queue_wait.series(attributes),
            duration=self.metrics.duration.series(
                task_attributes(name, queue, "task.outcome", "success")
            ),
            process=self.messaging.process_duration.series(process),
            processed=self.metrics.processed.entry(attributes),
        )
        # Kept for good, as the metrics' attribute sets are (bounded: task names x queues).
        self._series[name, queue] = found
        return self.log.add(found)

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

    def _finish(self, task: Any, outcome: str, error_type: str | None = None) -> tuple[str, str]:
        """Record a retried or failed attempt's duration and outcome; return its task name and
        queue (as ``begin`` found them)."""
        request = task.request
        started = self._started.pop(str(request.id), None)
        if started is None:
            name, queue = str(task.name), queue_of(request)
        else:
            began, name, queue = started[:3]
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
