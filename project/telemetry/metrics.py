"""The task metrics (named the OpenTelemetry way) and the worker's gauges.

Attributes are bounded: task name, queue, outcome and exception *type*. Never an error message:
labelling by the message (Go's ``err.Error()``) makes one time series per distinct message.

=========================  =========  ================================================
name                       kind       attributes
=========================  =========  ================================================
``kit.tasks.enqueued``     counter    task.name, task.queue
``kit.tasks.processed``    counter    task.name, task.queue (attempts that succeeded)
``kit.tasks.retried``      counter    task.name, task.queue, exception.type
``kit.tasks.failed``       counter    task.name, task.queue, exception.type (for good)
``kit.tasks.duplicates``   counter    task.name (refused by enqueue_unique)
``kit.task.duration``      histogram  task.name, task.queue, task.outcome (seconds)
``kit.task.queue_wait``    histogram  task.name, task.queue (seconds, publish to start)
``kit.queue.depth``        gauge      task.queue (messages waiting, all priorities)
``kit.queue.latency``      gauge      task.queue (seconds the oldest waiting one waited)
``kit.workers.alive``      gauge      (1 per live worker: ``sum`` counts workers)
=========================  =========  ================================================

A task records each of these on its own thread, so they cost what a dict update does: the
counters are :class:`Tally` (counted in the process, observed at export), the histograms the
kit's own (:mod:`project.telemetry.histograms`), and their attribute sets are built once
(:func:`task_attributes`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

import redis
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from project.ops.pending import Pending, pending
from project.telemetry.histograms import HistogramRegistry, KitHistogram

__all__ = [
    "METRIC_NAMES",
    "Tally",
    "TaskMetrics",
    "is_reporting_process",
    "register_worker_gauges",
    "seconds_histogram",
    "task_attributes",
]

#: Every metric the kit records, as a dashboard or an alert names it.
METRIC_NAMES = (
    "kit.tasks.enqueued",
    "kit.tasks.processed",
    "kit.tasks.retried",
    "kit.tasks.failed",
    "kit.tasks.duplicates",
    "kit.task.duration",
    "kit.task.queue_wait",
    "kit.queue.depth",
    "kit.queue.latency",
    "kit.workers.alive",
)

logger = logging.getLogger(__name__)

# Seconds: from a 1 ms no-op to the default 5-minute soft time limit and beyond.
DURATION_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
)


class Tally:
    """A monotonic counter kept in the process and observed at each export.

    An SDK ``Counter.add`` validates, copies and hashes its attributes and offers an exemplar
    on every call (about 13 us: seven per task were half of telemetry's cost on the task's
    thread); a task's counters need none of that per call. This counts under a lock and hands
    the totals to an observable counter, which exports the same cumulative sum (a ``counter``
    in the Prometheus exposition). Attribute sets are bounded by the callers, as for any
    metric."""

    def __init__(self, meter: Meter, name: str, unit: str, description: str) -> None:
        self._counts: dict[frozenset[tuple[str, str]], list[Any]] = {}
        self._lock = threading.Lock()
        #: Called before each observation: what adds counts logged for later
        #: (:meth:`project.telemetry.attempt_log.AttemptLog.drain`).
        self.before_observe: Callable[[], None] | None = None
        meter.create_observable_counter(name, [self._observe], unit=unit, description=description)

    def add(self, amount: int, attributes: Mapping[str, str]) -> None:
        self.bump(self.entry(attributes), amount)

    def entry(self, attributes: Mapping[str, str]) -> list[Any]:
        """The count of ``attributes`` (``[attributes, total]``), kept for good: a caller that
        counts the same set over and over holds it (:meth:`bump`)."""
        key = frozenset(attributes.items())
        found = self._counts.get(key)
        if found is None:
            with self._lock:
                found = self._counts.get(key)
                if found is None:
                    found = self._counts[key] = [dict(attributes), 0]
        return found

    def bump(self, entry: list[Any], amount: int = 1) -> None:
        """Add ``amount`` to ``entry`` (one of this counter's)."""
        with self._lock:
            entry[1] += amount

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        if self.before_observe is not None:
            self.before_observe()
        with self._lock:
            # A set held but never counted yet is not a series yet (as with the SDK's counter).
            counts = self._counts.values()
            return [Observation(total, attributes) for attributes, total in counts if total]


class TaskMetrics:
    """The instruments task hooks record into, created once per process from its meter (and
    its histogram registry: :mod:`project.telemetry.histograms`)."""

    def __init__(self, meter: Meter, histograms: HistogramRegistry) -> None:
        self.histograms = histograms
        self.enqueued = Tally(meter, "kit.tasks.enqueued", "{task}", "Tasks published by producers")
        self.processed = Tally(
            meter, "kit.tasks.processed", "{task}", "Task attempts that succeeded"
        )
        self.retried = Tally(
            meter, "kit.tasks.retried", "{task}", "Task attempts that will be retried"
        )
        self.failed = Tally(meter, "kit.tasks.failed", "{task}", "Tasks that failed for good")
        self.duration = seconds_histogram(
            histograms, "kit.task.duration", "Time a task attempt ran"
        )
        self.queue_wait = seconds_histogram(
            histograms,
            "kit.task.queue_wait",
            "Time from publish (or ETA) until a worker started the task",
        )


@lru_cache(maxsize=1024)  # bounded like the attributes: task names x queues (never mutated)
def task_attributes(
    name: str, queue: str, key: str | None = None, value: str = ""
) -> dict[str, str]:
    """A task metric's attribute set, built once per distinct set, not per measurement
    (``key``: a third attribute, the outcome or the exception type)."""
    attributes = {"task.name": name, "task.queue": queue}
    if key is not None:
        attributes[key] = value
    return attributes


def seconds_histogram(histograms: HistogramRegistry, name: str, description: str) -> KitHistogram:
    """A histogram of seconds with the kit's buckets: every duration it records shares them,
    so one dashboard query reads them all alike."""
    return histograms.histogram(name, description, DURATION_BUCKETS)


def is_reporting_process() -> bool:
    """True in one process per worker: pool process number 0 (prefork), or the only one.

    billiard numbers a worker's pool processes 0..N-1 and gives a replacement the number of the
    process it replaces, so exactly one live process per worker reports the worker's gauges.
    """
    from billiard.process import current_process

    return int(getattr(current_process(), "index", 0) or 0) == 0


def register_worker_gauges(meter: Meter, client: redis.Redis, queues: Iterable[str]) -> None:
    """Queue depth, queue latency and liveness, observed by one process per worker."""
    names = tuple(queues)

    def waiting() -> dict[str, Pending] | None:
        if not is_reporting_process():
            return None
        try:
            return pending(client, names, time.time())
        except redis.RedisError as exc:
            logger.debug("queue depth and latency not observed: %s", exc)
            return None

    def depth(options: CallbackOptions) -> Iterable[Observation]:
        found = waiting()
        return [Observation(p.depth, {"task.queue": q}) for q, p in (found or {}).items()]

    def latency(options: CallbackOptions) -> Iterable[Observation]:
        found = waiting()  # an empty queue (or one of foreign messages only) has waited 0 s
        return [
            Observation(p.oldest_age or 0.0, {"task.queue": q}) for q, p in (found or {}).items()
        ]

    def alive(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(1)] if is_reporting_process() else []

    meter.create_observable_gauge(
        "kit.queue.depth", [depth], unit="{task}", description="Messages waiting per queue"
    )
    meter.create_observable_gauge(
        "kit.queue.latency",
        [latency],
        unit="s",
        description="Seconds the oldest message waiting in each queue has waited",
    )
    meter.create_observable_gauge(
        "kit.workers.alive", [alive], unit="{worker}", description="1 per live worker"
    )
