"""What a worker has built by the time it serves tasks is moved out of the garbage collector's
sight (``gc.freeze()``), so each full collection walks only what tasks made since.

A worker imports Celery, kombu, redis-py, OpenTelemetry and the task catalog: some hundred
thousand objects that live as long as the process. CPython's full collection walks every
tracked object each time, and in the worker's main process a full collection ran every 8 s at
600 paced no-op tasks/s, stopping the process (fetch, hand-over to the pool, acknowledgements)
for 61-102 ms each (five of them in 40 s, measured with ``gc.callbacks``); with these objects
frozen, 1-56 ms. A task that arrives during such a pause waits that long, so the pauses are
the tail of the latency under load. Freezing before the pool forks also keeps the children
from writing into the pages they share with their parent when they collect (copy-on-write),
as CPython's documentation of ``gc.freeze`` recommends.

Frozen: at ``worker_init`` (the main process, its modules imported, before the prefork pool
forks: the children inherit it), once more when the consumer starts (the main process's
connections and bootsteps) and in each process that runs tasks after its ``process_init``
(telemetry's providers); not again after a reconnect, when what is tracked includes tasks'
leftovers. ``worker_shutdown`` unfreezes, so a worker run in a thread of a
longer-lived process (the tests' in-thread worker) leaves that process's collector as it was.
``KIT_GC_FREEZE=false`` turns it off.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from project.lifecycle.middleware import Middleware

__all__ = ["GcFreeze"]

logger = logging.getLogger(__name__)


class GcFreeze(Middleware):
    """``gc.freeze()`` after start-up, in every worker process (module docstring)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._started = False  # the consumer starts again after each reconnect: freeze once

    def _freeze(self, when: str, collect: bool = False) -> None:
        if not self.enabled:
            return
        if collect:  # what start-up left as garbage is not kept for ever
            gc.collect()
        gc.freeze()
        logger.debug("gc.freeze at %s: %d objects frozen", when, gc.get_freeze_count())

    def worker_init(self, worker: Any) -> None:
        self._freeze("worker_init", collect=True)

    def process_init(self) -> None:
        self._freeze("process_init")

    def worker_start(self, consumer: Any) -> None:
        if not self._started:
            self._started = True
            self._freeze("worker_start")

    def worker_shutdown(self, consumer: Any) -> None:
        self._started = False
        if self.enabled:
            gc.unfreeze()
