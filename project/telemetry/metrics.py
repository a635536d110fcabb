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
``kit.workers.alive``      gauge      (1 per live worker: ``sum`` counts workers)
=========================  =========  ================================================
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import redis
from opentelemetry.metrics import CallbackOptions, Meter, Observation

from project.broker.queues import queue_keys

__all__ = [
    "METRIC_NAMES",
    "TaskMetrics",
    "is_reporting_process",
    "register_worker_gauges",
    "seconds_histogram",
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


class TaskMetrics:
    """The instruments task hooks record into, created once per process from its meter."""

    def __init__(self, meter: Meter) -> None:
        self.enqueued = meter.create_counter(
            "kit.tasks.enqueued", unit="{task}", description="Tasks published by producers"
        )
        self.processed = meter.create_counter(
            "kit.tasks.processed", unit="{task}", description="Task attempts that succeeded"
        )
        self.retried = meter.create_counter(
            "kit.tasks.retried", unit="{task}", description="Task attempts that will be retried"
        )
        self.failed = meter.create_counter(
            "kit.tasks.failed", unit="{task}", description="Tasks that failed for good"
        )
        self.duration = seconds_histogram(meter, "kit.task.duration", "Time a task attempt ran")
        self.queue_wait = seconds_histogram(
            meter,
            "kit.task.queue_wait",
            "Time from publish (or ETA) until a worker started the task",
        )


def seconds_histogram(meter: Meter, name: str, description: str) -> Any:
    """A histogram of seconds with the kit's buckets: every duration it records shares them,
    so one dashboard query reads them all alike."""
    return meter.create_histogram(
        name,
        unit="s",
        description=description,
        explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
    )


def is_reporting_process() -> bool:
    """True in one process per worker: pool process number 0 (prefork), or the only one.

    billiard numbers a worker's pool processes 0..N-1 and gives a replacement the number of the
    process it replaces, so exactly one live process per worker reports the worker's gauges.
    """
    from billiard.process import current_process

    return int(getattr(current_process(), "index", 0) or 0) == 0


def register_worker_gauges(meter: Meter, client: redis.Redis, queues: Iterable[str]) -> None:
    """Queue depth and liveness, observed by one process per worker."""
    names = tuple(queues)

    def depth(options: CallbackOptions) -> Iterable[Observation]:
        if not is_reporting_process():
            return []
        try:
            sizes = _queue_sizes(client, names)
        except redis.RedisError as exc:
            logger.debug("queue depth not observed: %s", exc)
            return []
        return [Observation(size, {"task.queue": q}) for q, size in sizes.items()]

    def alive(options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(1)] if is_reporting_process() else []

    meter.create_observable_gauge(
        "kit.queue.depth", [depth], unit="{task}", description="Messages waiting per queue"
    )
    meter.create_observable_gauge(
        "kit.workers.alive", [alive], unit="{worker}", description="1 per live worker"
    )


def _queue_sizes(client: redis.Redis, queues: Iterable[str]) -> Mapping[str, int]:
    names = list(queues)
    with client.pipeline(transaction=False) as pipe:
        for queue in names:
            for key in queue_keys(queue):
                pipe.llen(key)
        lengths: list[int] = pipe.execute()
    per_queue = len(queue_keys("q"))
    return {q: sum(lengths[i * per_queue : (i + 1) * per_queue]) for i, q in enumerate(names)}
