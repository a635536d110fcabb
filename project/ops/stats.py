"""``kit stats``: per queue, what is waiting, running, scheduled, retrying and archived.

Read straight from Redis, so the counts are exact: kombu's queue lists (one per priority) for
pending messages, its ``unacked`` hash for messages a worker holds (running, or waiting for an
ETA), the kit's durable schedule and archive (all counted by the state model,
:func:`project.ops.states.count_states`), and the per-minute counters of
:mod:`project.ops.counters` for processed and failed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from celery import Celery

from project.broker.pause import paused_queues
from project.ops import counters as stats
from project.ops.pending import pending
from project.ops.states.lookup import count_states
from project.ops.states.model import TaskState
from project.ops.states.sources import UNACKED as UNACKED  # kombu's key, read by the console
from project.settings import Settings

__all__ = ["QueueStats", "Snapshot", "collect"]


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
    waiting = pending(client, names, now)
    for queue, row in rows.items():
        row.paused = queue in paused
        row.pending = waiting[queue].depth
        row.oldest_pending_age = waiting[queue].oldest_age
    for queue, counted in count_states(app, client, names, waiting).items():
        row = rows[queue]
        row.active = counted[TaskState.ACTIVE]
        # Here a delayed retry counts among the scheduled too (the state model keeps them apart).
        row.retrying = counted[TaskState.RETRYING]
        row.scheduled = counted[TaskState.SCHEDULED] + row.retrying
        row.archived = counted[TaskState.ARCHIVED]
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


def _workers(app: Celery, timeout: float) -> dict[str, int]:
    replies = app.control.inspect(timeout=timeout).stats() or {}
    return {
        name: int((info.get("pool") or {}).get("max-concurrency", 0))
        for name, info in sorted(replies.items())
    }
