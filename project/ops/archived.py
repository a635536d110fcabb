"""Archived tasks for operators: list, show, requeue with a fresh retry budget, delete.

Requeue never loses a record: a batch of records is first moved aside (one Lua script per
batch: out of the archive index, renamed to ``kit:requeueing:<id>``), then published, and only
then dropped. A requeue that dies half-way leaves the moved records behind; the next requeue (or
:func:`restore_held`) puts them back into the archive first. Moving them aside before publishing
also means a task that fails again at once is archived afresh, not deleted with the old record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import redis
from celery import Celery

from project import keys
from project.broker.connections import as_text
from project.retries.archive import ArchivedTask, Reason

__all__ = ["BATCH", "delete", "list_records", "requeue", "restore_held"]

BATCH = 500

_HOLD = """
local moved = {}
for i, id in ipairs(ARGV) do
  local record = KEYS[1] .. id
  if redis.call('exists', record) == 1 then
    redis.call('zrem', KEYS[2], id)
    redis.call('rename', record, KEYS[3] .. id)
    table.insert(moved, id)
  end
end
return moved
"""


def _ids(client: redis.Redis) -> list[str]:
    return [as_text(m) for m in client.zrevrange(keys.ARCHIVE_INDEX, 0, -1)]


def _records(client: redis.Redis, ids: list[str]) -> Iterator[ArchivedTask]:
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        for raw in client.mget([keys.archive_record(i) for i in batch]):
            if raw is not None:
                yield ArchivedTask.from_json(raw)


def list_records(
    client: redis.Redis, queue: str | None = None, task: str | None = None, limit: int = 100
) -> list[ArchivedTask]:
    """Newest first, filtered by queue and task name."""
    found = []
    for record in _records(client, _ids(client)):
        if (queue is None or record.queue == queue) and (task is None or record.task == task):
            found.append(record)
            if len(found) >= limit:
                break
    return found


def restore_held(client: redis.Redis) -> int:
    """Put back records a dead requeue left moved aside."""
    restored = 0
    for key in client.scan_iter(keys.requeue_hold("*"), count=BATCH):
        name = as_text(key)
        task_id = name.removeprefix(keys.requeue_hold)
        raw = client.get(name)
        if raw is None:
            continue
        archived_at = json.loads(raw).get("archived_at", 0)
        with client.pipeline(transaction=True) as pipe:
            pipe.rename(name, keys.archive_record(task_id))
            pipe.zadd(keys.ARCHIVE_INDEX, {task_id: archived_at})
            pipe.execute()
        restored += 1
    return restored


def requeue(app: Celery, client: redis.Redis, ids: list[str] | None) -> tuple[int, list[str]]:
    """Publish archived tasks again (``ids``, or all when None); returns (requeued, skipped).

    A task keeps its id, so callers holding its AsyncResult see the new outcome. Refused
    messages that were not JSON cannot be published again and are left in the archive.
    """
    restore_held(client)
    targets = _ids(client) if ids is None else list(ids)
    requeued, skipped = 0, []
    for start in range(0, len(targets), BATCH):
        batch = targets[start : start + BATCH]
        records = {r.id: r for r in _records(client, batch)}
        runnable = [i for i in batch if i in records and _republishable(records[i])]
        skipped += [i for i in batch if i not in runnable]
        moved = (
            client.eval(
                _HOLD,
                3,
                keys.archive_record,
                keys.ARCHIVE_INDEX,
                keys.requeue_hold,
                *runnable,
            )
            if runnable
            else []
        )
        moved_ids = [as_text(m) for m in moved]
        with app.producer_or_acquire() as producer:
            for task_id in moved_ids:
                _publish(app, records[task_id], producer)
        if moved_ids:
            client.delete(*(keys.requeue_hold(i) for i in moved_ids))
        requeued += len(moved_ids)
    return requeued, skipped


def _republishable(record: ArchivedTask) -> bool:
    return not (record.reason == Reason.REFUSED and record.content_type != "application/json")


def _publish(app: Celery, record: ArchivedTask, producer: Any) -> None:
    options: dict[str, Any] = {"task_id": record.id, "producer": producer}
    if record.queue:
        options["queue"] = record.queue
    if record.priority is not None:
        options["priority"] = record.priority
    app.send_task(record.task, list(record.args), dict(record.kwargs), **options)


def delete(client: redis.Redis, ids: list[str] | None) -> int:
    targets = _ids(client) if ids is None else list(ids)
    removed = 0
    for start in range(0, len(targets), BATCH):
        batch = targets[start : start + BATCH]
        with client.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.ARCHIVE_INDEX, *batch)
            pipe.delete(*(keys.archive_record(i) for i in batch))
            removed += int(pipe.execute()[0])
    return removed
