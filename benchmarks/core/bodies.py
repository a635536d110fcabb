"""The latency benchmark's handler side: how long a task waited between enqueue and start.

The producer passes ``time.time()`` taken just before it enqueues; the handler's first act is
to compare it with its own clock (same machine, same clock) and push the difference to a Redis
list, which the benchmark reads afterwards. One RPUSH per task, after the latency is taken, so
the measurement does not include its own cost. Every framework's stamp task calls
:func:`record`; the URL comes from :data:`URL_ENV`, set by the benchmark for every worker.
"""

from __future__ import annotations

import os
import time

import redis

__all__ = ["KEY", "URL_ENV", "record", "sleep"]

URL_ENV = "BENCH_STAMP_URL"
KEY = "bench:latency"
SLEEP_SECONDS = 0.01  # the I/O-bound task: 10 ms of waiting, no CPU

_clients: dict[int, redis.Redis] = {}  # by process id: prefork children must not share one


def _client() -> redis.Redis:
    pid = os.getpid()
    client = _clients.get(pid)
    if client is None:
        client = _clients[pid] = redis.Redis.from_url(os.environ[URL_ENV])
    return client


def record(sent: float) -> None:
    """Push ``now - sent`` (seconds) to :data:`KEY`."""
    waited = time.time() - sent
    _client().rpush(KEY, repr(waited))


def sleep() -> None:
    """The I/O-bound task's body, the same for every framework."""
    time.sleep(SLEEP_SECONDS)
