"""Per-minute task counters in Redis: what ``health:check`` and ``kit stats`` read.

OpenTelemetry metrics go to a backend the kit cannot query; these small counters stay beside
the queues so the kit itself can answer "how many failed in the last hour?". One key per
outcome, queue and minute (``kit:stats:<outcome>:<queue>:<minute>``), expiring after
:data:`RETENTION` seconds; a task adds one pipelined round trip.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis

__all__ = ["OUTCOMES", "RETENTION", "record", "totals"]

BUCKET = 60  # seconds per counter
RETENTION = 2 * 86_400  # seconds a counter is kept: enough for "the last day"
OUTCOMES = ("processed", "failed")
_PREFIX = "kit:stats:"


def _key(outcome: str, queue: str, bucket: int) -> str:
    return f"{_PREFIX}{outcome}:{queue}:{bucket}"


def record(client: redis.Redis, queue: str, outcome: str, now: float | None = None) -> None:
    bucket = int((time.time() if now is None else now) // BUCKET)
    key = _key(outcome, queue, bucket)
    with client.pipeline(transaction=False) as pipe:
        pipe.incr(key)
        pipe.expire(key, RETENTION)
        pipe.execute()


def totals(
    client: redis.Redis, queues: Iterable[str], seconds: float, now: float | None = None
) -> dict[str, dict[str, int]]:
    """Per queue, per outcome: the count over the last ``seconds`` (whole minutes)."""
    last = int((time.time() if now is None else now) // BUCKET)
    first = last - max(1, int(seconds // BUCKET)) + 1
    names = list(queues)
    keys = [
        _key(outcome, queue, bucket)
        for queue in names
        for outcome in OUTCOMES
        for bucket in range(first, last + 1)
    ]
    values = client.mget(keys) if keys else []
    per = last - first + 1
    result: dict[str, dict[str, int]] = {}
    for qi, queue in enumerate(names):
        result[queue] = {}
        for oi, outcome in enumerate(OUTCOMES):
            start = (qi * len(OUTCOMES) + oi) * per
            result[queue][outcome] = sum(int(v) for v in values[start : start + per] if v)
    return result
