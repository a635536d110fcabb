"""``kit stats``: per queue, what is waiting, running, scheduled, retrying and archived.

Read straight from Redis, so the counts are exact: kombu's queue lists (one per priority) for
pending messages, its ``unacked`` hash for messages a worker holds (running, or waiting for an
ETA), the kit's durable schedule and archive, and the per-minute counters of
:mod:`project.ops.counters` for processed and failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from celery import Celery

from project import keys
from project.broker.connections import as_text
from project.broker.pause import paused_queues
from project.delay.scheduled import ScheduledCall
from project.ops import counters as stats
from project.ops.pending import pending
from project.settings import Settings

__all__ = ["QueueStats", "Snapshot", "collect"]

UNACKED = "unacked"  # kombu's hash of delivered, unacknowledged messages
SCAN_BATCH = 1000


@dataclass
class QueueStats:
    queue: str
    paused: bool = False
    pending: int = 0
    active: int = 0
    scheduled: int = 0
    retrying: int = 0
    archived: int = 0
    processed_1h: int = 0
    failed_1h: int = 0
    processed_1d: int = 0
    failed_1d: int = 0
    oldest_pending_age: float | None = None  # seconds


@dataclass
class Snapshot:
    queues: list[QueueStats]
    redis_memory_bytes: int
    redis_memory_human: str
    workers: dict[str, int] = field(default_factory=dict)  # node name -> concurrency

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def collect(
    app: Celery, client: redis.Redis, settings: Settings, *, timeout: float = 1.0
) -> Snapshot:
    names = list(settings.broker.queue_weights)
    rows = {q: QueueStats(q) for q in names}
    paused = paused_queues(client)
    now = time.time()
    for queue, waiting in pending(client, names, now).items():
        row = rows[queue]
        row.paused = queue in paused
        row.pending = waiting.depth
        row.oldest_pending_age = waiting.oldest_age
    _count_unacked(client, rows)
    _count_scheduled(client, rows)
    _count_archived(client, rows)
    for window, suffix in ((3600, "1h"), (86_400, "1d")):
        for queue, counts in stats.totals(client, names, window).items():
            setattr(rows[queue], f"processed_{suffix}", counts["processed"])
            setattr(rows[queue], f"failed_{suffix}", counts["failed"])
    memory = client.info("memory")
    return Snapshot(
        queues=list(rows.values()),
        redis_memory_bytes=int(memory.get("used_memory", 0)),
        redis_memory_human=str(memory.get("used_memory_human", "")),
        workers=_workers(app, timeout),
    )


def _count_unacked(client: redis.Redis, rows: dict[str, QueueStats]) -> None:
    for _, raw in client.hscan_iter(UNACKED, count=SCAN_BATCH):
        try:
            message, _exchange, routing_key = json.loads(raw)
            headers = message.get("headers") or {}
        except (ValueError, TypeError, AttributeError):
            continue
        row = rows.get(routing_key)
        if row is None:
            continue
        if headers.get("eta"):  # held by a worker until due
            row.scheduled += 1
            row.retrying += 1 if headers.get("retries") else 0
        else:
            row.active += 1


def _count_scheduled(client: redis.Redis, rows: dict[str, QueueStats]) -> None:
    for raw in _records(client, keys.SCHEDULED, keys.scheduled_record):
        call = ScheduledCall.from_json(raw)
        queue = call.options.get("queue") or "default"
        row = rows.get(str(getattr(queue, "name", queue)))
        if row is not None:
            row.scheduled += 1
            row.retrying += 1 if call.options.get("retries") else 0


def _count_archived(client: redis.Redis, rows: dict[str, QueueStats]) -> None:
    for raw in _records(client, keys.ARCHIVE_INDEX, keys.archive_record):
        row = rows.get(json.loads(raw).get("queue") or "")
        if row is not None:
            row.archived += 1


def _records(client: redis.Redis, index: str, record: keys.Prefix) -> Iterator[Any]:
    """The JSON record of every id in the sorted set ``index``, read :data:`SCAN_BATCH` at a
    time (a record deleted since the index was read is skipped)."""
    ids = [as_text(m) for m in client.zrange(index, 0, -1)]
    for start in range(0, len(ids), SCAN_BATCH):
        batch = ids[start : start + SCAN_BATCH]
        yield from (raw for raw in client.mget([record(i) for i in batch]) if raw is not None)


def _workers(app: Celery, timeout: float) -> dict[str, int]:
    replies = app.control.inspect(timeout=timeout).stats() or {}
    return {
        name: int((info.get("pool") or {}).get("max-concurrency", 0))
        for name, info in sorted(replies.items())
    }
