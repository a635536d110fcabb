"""Per-minute task counters in Redis: what ``health:check`` and ``kit stats`` read.

OpenTelemetry metrics go to a backend the kit cannot query; these small counters stay beside
the queues so the kit itself can answer "how many failed in the last hour?". One key per
outcome, queue and minute (:func:`project.keys.stats`), expiring after
:data:`RETENTION` seconds.

Tasks count through a :class:`Tally`: counts wait in the process and reach Redis in one
pipeline every :data:`FLUSH_INTERVAL` seconds, not one round trip per task (that round trip
was 15 % of a no-op task's time in the pool process). A process killed outright loses at most
its last second of counts: these are operators' counters, not the task ledger.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import redis

from project import keys
from project.lifecycle.middleware import Middleware

__all__ = [
    "FLUSH_INTERVAL",
    "OUTCOMES",
    "RETENTION",
    "Counters",
    "Tally",
    "per_minute",
    "record",
    "totals",
]

logger = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0  # seconds counts wait in a process before they are written

BUCKET = 60  # seconds per counter
RETENTION = 2 * 86_400  # seconds a counter is kept: enough for "the last day"
OUTCOMES = ("processed", "failed")


def record(client: redis.Redis, queue: str, outcome: str, now: float | None = None) -> None:
    bucket = int((time.time() if now is None else now) // BUCKET)
    key = keys.stats(outcome, queue, bucket)
    with client.pipeline(transaction=False) as pipe:
        pipe.incr(key)
        pipe.expire(key, RETENTION)
        pipe.execute()


class Tally:
    """Buffered counters for one process (a fork starts its own buffer and flusher)."""

    def __init__(self, client: Callable[[], redis.Redis], interval: float = FLUSH_INTERVAL) -> None:
        self._client = client
        self._interval = interval
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, int]] = Counter()
        self._pid: int | None = None

    def add(self, queue: str, outcome: str, now: float | None = None) -> None:
        bucket = int((time.time() if now is None else now) // BUCKET)
        with self._lock:
            if self._pid != os.getpid():  # first count in this process (or after a fork)
                self._pid = os.getpid()
                self._counts = Counter()
                threading.Thread(target=self._run, name="kit-stats", daemon=True).start()
            self._counts[(outcome, queue, bucket)] += 1

    def flush(self) -> int:
        """Write the buffered counts; on a Redis error keep them for the next flush."""
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if not counts:
            return 0
        try:
            with self._client().pipeline(transaction=False) as pipe:
                for (outcome, queue, bucket), n in counts.items():
                    key = keys.stats(outcome, queue, bucket)
                    pipe.incrby(key, n)
                    pipe.expire(key, RETENTION)
                pipe.execute()
        except redis.RedisError:
            with self._lock:
                self._counts.update(counts)
            logger.debug("task counters not written; kept for the next flush", exc_info=True)
            return 0
        return sum(counts.values())

    def _run(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            time.sleep(self._interval)
            self.flush()


def totals(
    client: redis.Redis, queues: Iterable[str], seconds: float, now: float | None = None
) -> dict[str, dict[str, int]]:
    """Per queue, per outcome: the count over the last ``seconds`` (whole minutes)."""
    last = int((time.time() if now is None else now) // BUCKET)
    first = last - max(1, int(seconds // BUCKET)) + 1
    names = list(queues)
    wanted = [
        keys.stats(outcome, queue, bucket)
        for queue in names
        for outcome in OUTCOMES
        for bucket in range(first, last + 1)
    ]
    values = client.mget(wanted) if wanted else []
    per = last - first + 1
    result: dict[str, dict[str, int]] = {}
    for qi, queue in enumerate(names):
        result[queue] = {}
        for oi, outcome in enumerate(OUTCOMES):
            start = (qi * len(OUTCOMES) + oi) * per
            result[queue][outcome] = sum(int(v) for v in values[start : start + per] if v)
    return result


def per_minute(
    client: redis.Redis, queues: Iterable[str], minutes: int, now: float | None = None
) -> dict[str, list[int]]:
    """Per outcome: the count of each of the last ``minutes`` minutes, oldest first, summed
    over ``queues`` (the console's chart); the current, unfinished minute is the last."""
    last = int((time.time() if now is None else now) // BUCKET)
    buckets = range(last - minutes + 1, last + 1)
    names = list(queues)
    wanted = [keys.stats(o, q, b) for o in OUTCOMES for b in buckets for q in names]
    values = iter(client.mget(wanted) if wanted else [])
    return {
        outcome: [sum(int(next(values) or 0) for _ in names) for _ in buckets]
        for outcome in OUTCOMES
    }


class Counters(Middleware):
    """Counts each finished task by queue and outcome (``processed``, ``failed``)."""

    def __init__(self, client: Callable[[], redis.Redis]) -> None:
        self.tally = Tally(client)

    def on_success(self, task: Any, retval: Any) -> None:
        self.tally.add(_queue(task), "processed")

    def on_failure(self, task: Any, exc: BaseException, einfo: Any) -> None:
        self.tally.add(_queue(task), "failed")

    def process_shutdown(self) -> None:
        self.tally.flush()

    def worker_shutdown(self, consumer: Any) -> None:
        self.tally.flush()


def _queue(task: Any) -> str:
    return str((task.request.delivery_info or {}).get("routing_key") or "unknown")
