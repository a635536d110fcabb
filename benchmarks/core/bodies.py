"""The task bodies every framework's worker runs, and the names they share.

Stock Celery, the kit, Dramatiq and RQ all run these same three functions, registered under
each library's own decorator (:mod:`benchmarks.throughput.kit_tasks`,
:mod:`benchmarks.throughput.plain_app`, :mod:`benchmarks.layouts.dramatiq_tasks`; RQ imports
them by dotted path), so the frameworks differ only in what they do around a task:

* :func:`noop` does nothing: the measured rate is the worker's own per-task cost;
* :func:`sleep` waits 10 ms without CPU: what concurrency buys on I/O-bound work;
* :func:`cpu` does a fixed amount of CPU work (about 5 ms on the reference 2-CPU machine) with
  the GIL held: what processes buy over threads. Chained SHA-256 of 32 bytes, because hashlib
  releases the GIL only for inputs over 2 KiB, so this is CPU work a thread cannot overlap,
  like most Python code;
* :func:`stamp` is the latency benchmark's handler. The producer passes ``time.time()`` taken
  just before it enqueues; the handler's first act is to compare it with its own clock (same
  machine, same clock) and push the difference to a Redis list, which the benchmark reads
  afterwards. One RPUSH per task, after the latency is taken, so the figure excludes its own
  cost. The list's Redis URL comes from :data:`URL_ENV`, set by the benchmark for every worker.

Kept free of the kit and of any framework, since every worker imports it.
"""

from __future__ import annotations

import hashlib
import os
import time

import redis

__all__ = [
    "BROKER_URL_ENV",
    "KEY",
    "KINDS",
    "QUEUE",
    "RESULT_BACKEND_ENV",
    "URL_ENV",
    "cpu",
    "noop",
    "sleep",
    "stamp",
]

URL_ENV = "BENCH_STAMP_URL"
#: The broker URL of stock Celery's and Dramatiq's workers (the kit's reads REDIS_URL).
BROKER_URL_ENV = "BENCH_BROKER_URL"
#: Stock Celery's result backend URL, for the layout that has one (unset: no results).
RESULT_BACKEND_ENV = "BENCH_RESULT_BACKEND"
KEY = "bench:latency"
QUEUE = "bench"  # the queue Dramatiq's and RQ's workers read (Celery keeps its own)
KINDS = ("noop", "sleep", "cpu", "stamp")  # the task kinds, by the name of their body below
SLEEP_SECONDS = 0.01  # the I/O-bound task: 10 ms of waiting, no CPU
#: The CPU-bound task's work: 17,000 chained SHA-256 digests, 4.9 ms on the reference machine
#: (AMD EPYC VM, CPython 3.11). Fixed work, not a duration, so a slower CPU shows as a lower rate.
CPU_ROUNDS = 17_000

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


def cpu() -> None:
    """About 5 ms of pure CPU work with the GIL held (see :data:`CPU_ROUNDS`)."""
    digest = bytes(32)
    for _ in range(CPU_ROUNDS):
        digest = hashlib.sha256(digest).digest()


def stamp(sent: float) -> None:
    """Push ``now - sent`` (seconds) to :data:`KEY`."""
    waited = time.time() - sent
    _client().rpush(KEY, repr(waited))
