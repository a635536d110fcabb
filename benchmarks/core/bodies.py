"""The task bodies every framework's worker runs, and the names they share.

Stock Celery, the kit, Dramatiq and RQ all run these same three functions, registered under
each library's own decorator (:mod:`benchmarks.throughput.kit_tasks`,
:mod:`benchmarks.throughput.plain_app`, :mod:`benchmarks.layouts.dramatiq_tasks`; RQ imports
them by dotted path), so the frameworks differ only in what they do around a task:

* :func:`noop` does nothing: the measured rate is the worker's own per-task cost;
* :func:`sleep` waits 10 ms without CPU: what concurrency buys on I/O-bound work;
* :func:`stamp` is the latency benchmark's handler. The producer passes ``time.time()`` taken
  just before it enqueues; the handler's first act is to compare it with its own clock (same
  machine, same clock) and push the difference to a Redis list, which the benchmark reads
  afterwards. One RPUSH per task, after the latency is taken, so the figure excludes its own
  cost. The list's Redis URL comes from :data:`URL_ENV`, set by the benchmark for every worker.

Kept free of the kit and of any framework, since every worker imports it.
"""

from __future__ import annotations

import os
import time

import redis

__all__ = ["BROKER_URL_ENV", "KEY", "KINDS", "QUEUE", "URL_ENV", "noop", "sleep", "stamp"]

URL_ENV = "BENCH_STAMP_URL"
#: The broker URL of stock Celery's and Dramatiq's workers (the kit's reads REDIS_URL).
BROKER_URL_ENV = "BENCH_BROKER_URL"
KEY = "bench:latency"
QUEUE = "bench"  # the queue Dramatiq's and RQ's workers read (Celery keeps its own)
KINDS = ("noop", "sleep", "stamp")  # the task kinds, by the name of their body below
SLEEP_SECONDS = 0.01  # the I/O-bound task: 10 ms of waiting, no CPU

_clients: dict[int, redis.Redis] = {}  # by process id: prefork children must not share one


def _client() -> redis.Redis:
    pid = os.getpid()
    client = _clients.get(pid)
    if client is None:
        client = _clients[pid] = redis.Redis.from_url(os.environ[URL_ENV])
    return client


def noop() -> None:
    """Does nothing, so the measured rate is the worker's own per-task cost."""


def sleep() -> None:
    """10 ms of I/O wait (``time.sleep(0.01)``): what concurrency buys."""
    time.sleep(SLEEP_SECONDS)


def stamp(sent: float) -> None:
    """Push ``now - sent`` (seconds) to :data:`KEY`."""
    waited = time.time() - sent
    _client().rpush(KEY, repr(waited))
