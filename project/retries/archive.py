"""The archive: tasks that failed for good, kept in Redis where an operator can see and re-run them.

Like Asynq's archived tasks. A task lands here when it raises a permanent error, exhausts its
retries, fails with an error the kit does not know to be transient, or when the worker refuses
its message (not JSON, malformed, unregistered). The record holds everything needed to publish
the task again: name, queue, arguments, priority, plus the error, traceback and attempts.

Layout (see :mod:`project.keys`): one JSON string per task and a sorted set indexing the ids by
archive time. Both are written in one ``MULTI`` so an index entry never points at nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from project import keys
from project.broker.connections import as_text

__all__ = ["Archive", "ArchivedTask", "Reason"]


class Reason:
    """Why a task was archived (the ``reason`` field)."""

    PERMANENT = "permanent"  # raised PermanentError
    RETRIES_EXHAUSTED = "retries_exhausted"  # a transient error outlived max_retries
    UNEXPECTED = "unexpected"  # an error not classified as transient: fails fast
    REFUSED = "refused"  # the worker would not execute the message
    OPERATOR = "archived by operator"  # ``kit task archive`` (or the console) moved it here


@dataclass
class ArchivedTask:
    id: str
    task: str
    reason: str
    error_type: str
    error: str
    queue: str | None = None
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    traceback: str | None = None
    attempts: int = 1
    max_retries: int | None = None
    priority: int | None = None
    hostname: str | None = None
    root_id: str | None = None
    parent_id: str | None = None
    archived_at: float = field(default_factory=time.time)
    #: For refused messages only: the content type and the raw body, never decoded.
    content_type: str | None = None
    body: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=repr, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> ArchivedTask:
        return cls(**json.loads(raw))


class Archive:
    """Redis-backed archive, bounded at ``max_size`` records (the oldest go first)."""

    def __init__(self, client: redis.Redis, max_size: int) -> None:
        self._redis = client
        self.max_size = max_size

    def add(self, record: ArchivedTask) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.archive_record(record.id), record.to_json())
            pipe.zadd(keys.ARCHIVE_INDEX, {record.id: record.archived_at})
            pipe.zcard(keys.ARCHIVE_INDEX)
            size = pipe.execute()[-1]
        if size > self.max_size:
            self._trim(size - self.max_size)

    def get(self, task_id: str) -> ArchivedTask | None:
        raw = self._redis.get(keys.archive_record(task_id))
        return None if raw is None else ArchivedTask.from_json(raw)

    def ids(self, limit: int = 100, offset: int = 0) -> list[str]:
        """Archived task ids, newest first."""
        return _strings(self._redis.zrevrange(keys.ARCHIVE_INDEX, offset, offset + limit - 1))

    def records(self, limit: int = 100, offset: int = 0) -> list[ArchivedTask]:
        ids = self.ids(limit, offset)
        if not ids:
            return []
        raws = self._redis.mget([keys.archive_record(i) for i in ids])
        return [ArchivedTask.from_json(raw) for raw in raws if raw is not None]

    def count(self) -> int:
        return int(self._redis.zcard(keys.ARCHIVE_INDEX))

    def delete(self, task_id: str) -> bool:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.ARCHIVE_INDEX, task_id)
            pipe.delete(keys.archive_record(task_id))
            removed, _ = pipe.execute()
        return bool(removed)

    def delete_older_than(self, cutoff: float, batch: int = 500) -> int:
        """Remove records archived before ``cutoff`` (Unix seconds), in batches."""
        removed = 0
        while True:
            ids = _strings(self._redis.zrangebyscore(keys.ARCHIVE_INDEX, "-inf", cutoff, 0, batch))
            if not ids:
                return removed
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(keys.ARCHIVE_INDEX, *ids)
                pipe.delete(*(keys.archive_record(i) for i in ids))
                pipe.execute()
            removed += len(ids)

    def _trim(self, excess: int) -> None:
        ids = _strings(self._redis.zrange(keys.ARCHIVE_INDEX, 0, excess - 1))
        if not ids:
            return
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.ARCHIVE_INDEX, *ids)
            pipe.delete(*(keys.archive_record(i) for i in ids))
            pipe.execute()


def _strings(members: Any) -> list[str]:
    return [as_text(m) for m in members]
