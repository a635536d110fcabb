"""Finding one task by id, and counting every queue's tasks per state.

:func:`locate` says where a task is and keeps what the actions need to move it (the exact
payload and list of a pending message, the ``unacked`` tag of a held one, the schedule's call,
the archive's record). It looks where a task cannot have left in between first (the schedule
and the archive are moved atomically), then ``unacked`` on both sides of the queue lists, so a
task a worker fetches while it looks is still found.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery

from project import keys
from project.broker.connections import as_text
from project.broker.pause import paused_queues
from project.broker.queues import queue_keys
from project.delay.scheduled import ScheduledCall
from project.errors import UnknownTaskError
from project.lifecycle.kit import kit_of
from project.ops import counters
from project.ops.pending import Pending, pending
from project.ops.states.listing import (
    INSPECT_TIMEOUT,
    WINDOW,
    group_entry,
    holders,
    result_client,
)
from project.ops.states.model import TaskDetail, TaskEntry, TaskState
from project.ops.states.sources import (
    UNACKED,
    Message,
    archived_entry,
    call_queue,
    decode_message,
    error_text,
    result_entry,
    scheduled_entry,
    unacked_message,
)
from project.retries.archive import ArchivedTask

__all__ = ["Found", "count_states", "find_task", "held", "locate", "queue_overview"]


#: Messages read per round trip while a queue's lists are searched for one id.
FIND_WINDOW = 1000


@dataclass(frozen=True)
class Found:
    """Where a task is, and the Redis value an action must remove to move it."""

    entry: TaskEntry
    message: Message | None = None  # pending (``key`` is its list) or held (in ``unacked``)
    key: str | None = None
    call: ScheduledCall | None = None
    record: ArchivedTask | None = None
    meta: dict[str, Any] | None = None

    @property
    def state(self) -> TaskState:
        return self.entry.state

    @property
    def held(self) -> bool:
        """A worker holds it in memory for its ETA (out of Redis's reach: it is revoked)."""
        return self.message is not None and self.state in (
            TaskState.SCHEDULED,
            TaskState.RETRYING,
        )


def locate(app: Celery, client: redis.Redis, task_id: str) -> Found:
    """Where ``task_id`` is; :class:`UnknownTaskError` when nowhere."""
    raw = client.get(keys.scheduled_record(task_id))
    if raw is not None:
        call = ScheduledCall.from_json(raw)
        return Found(scheduled_entry(app, call), call=call)
    raw = client.get(keys.archive_record(task_id))
    if raw is not None:
        record = ArchivedTask.from_json(raw)
        return Found(archived_entry(record), record=record)
    found = held(client, task_id) or _pending(app, client, task_id) or held(client, task_id)
    if found is not None:
        return found
    if "|" in task_id and client.sismember(keys.AGGREGATION_GROUPS, task_id):
        entry = group_entry(app, client, task_id)
        if entry is not None:
            return Found(entry)
    raw = result_client(app).get(app.backend.get_key_for_task(task_id))
    meta = json.loads(raw) if raw is not None else None
    if isinstance(meta, dict) and meta.get("status") in ("SUCCESS", "FAILURE", "REVOKED"):
        entry = result_entry(meta)
        if meta.get("status") != "SUCCESS":
            entry = dataclasses.replace(entry, error=error_text(meta) or str(meta["status"]))
        return Found(entry, meta=meta)
    raise UnknownTaskError(task_id)


def held(client: redis.Redis, task_id: str) -> Found | None:
    """The task a worker holds (running, or waiting for its ETA), found in ``unacked``."""
    now = time.time()
    for tag, raw in client.hscan_iter(UNACKED, count=WINDOW):
        if task_id not in as_text(raw):
            continue
        message = unacked_message(raw)
        if message is not None and message.id == task_id:
            return Found(message.entry(message.state_when_held(now)), message, as_text(tag))
    return None


def _pending(app: Celery, client: redis.Redis, task_id: str) -> Found | None:
    """The message in a queue's lists (windows of :data:`FIND_WINDOW`, the id matched as text
    before any message is decoded)."""
    for queue in kit_of(app).settings.broker.queue_weights:
        for key in queue_keys(queue):
            start = 0
            while True:
                window = client.lrange(key, start, start + FIND_WINDOW - 1)
                for raw in window:
                    if task_id in as_text(raw):
                        message = decode_message(raw, queue)
                        if message is not None and message.id == task_id:
                            return Found(message.entry(TaskState.PENDING), message, key)
                if len(window) < FIND_WINDOW:
                    break
                start += FIND_WINDOW
    return None


def find_task(app: Celery, client: redis.Redis, task_id: str) -> TaskDetail:
    """Everything the kit holds about ``task_id``; :class:`UnknownTaskError` when nothing."""
    found = locate(app, client, task_id)
    entry = found.entry
    headers: dict[str, Any] = {}
    payload: dict[str, Any]
    result: Any = None
    traceback: str | None = None
    if found.message is not None:
        args, kwargs, embed = found.message.body()
        headers = found.message.headers
        properties = {k: v for k, v in found.message.properties.items() if k != "body"}
        payload = {"args": args, "kwargs": kwargs, "headers": headers, "options": properties}
        payload["options"]["embed"] = embed
        if found.state is not TaskState.PENDING:  # held by a worker: ask it
            entry = dataclasses.replace(
                entry, worker=holders(app, [task_id], INSPECT_TIMEOUT).get(task_id)
            )
    elif found.call is not None:
        options = dict(found.call.options)
        headers = dict(options.pop("headers", None) or {})
        payload = {
            "args": found.call.args,
            "kwargs": found.call.kwargs,
            "headers": headers,
            "options": options,
        }
    elif found.record is not None:
        record = found.record
        payload = {
            "args": record.args,
            "kwargs": record.kwargs,
            "headers": {},
            "options": {
                "queue": record.queue,
                "priority": record.priority,
                "reason": record.reason,
                "max_retries": record.max_retries,
                "root_id": record.root_id,
                "parent_id": record.parent_id,
            },
        }
        traceback = record.traceback
    elif found.meta is not None:
        meta = found.meta
        payload = {
            "args": meta.get("args") or [],
            "kwargs": meta.get("kwargs") or {},
            "headers": {},
            "options": {k: meta.get(k) for k in ("queue", "worker", "retries", "status")},
        }
        result = meta.get("result") if meta.get("status") == "SUCCESS" else None
        traceback = meta.get("traceback")
    else:  # an aggregation group
        payload = {"args": [], "kwargs": json.loads(entry.kwargs), "headers": {}, "options": {}}
    return TaskDetail(entry, payload, result, traceback, _trace_id(headers))


def _trace_id(headers: dict[str, Any]) -> str | None:
    parts = str(headers.get("traceparent") or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


# -- counts ---------------------------------------------------------------------------------


def count_states(
    app: Celery,
    client: redis.Redis,
    queues: list[str],
    waiting: dict[str, Pending] | None = None,
) -> dict[str, dict[TaskState, int]]:
    """Per queue, how many tasks each state holds; each source read in windows (``waiting``:
    the queues' :func:`~project.ops.pending.pending`, when the caller has read it already).

    ``completed`` is the successes counted (:mod:`project.ops.counters`) within the results'
    lifetime, ``KIT_RESULT_EXPIRES`` (at most the counters' own two days): what a SCAN of
    every result would find, without reading them all.
    """
    counts = {q: dict.fromkeys(TaskState, 0) for q in queues}
    now = time.time()
    waiting = pending(client, queues, now) if waiting is None else waiting
    for queue in queues:
        counts[queue][TaskState.PENDING] = waiting[queue].depth
    for _, raw in client.hscan_iter(UNACKED, count=WINDOW):
        message = unacked_message(raw)
        if message is not None and message.queue in counts:
            counts[message.queue][message.state_when_held(now)] += 1
    for raw in _windowed(client, keys.SCHEDULED, keys.scheduled_record):
        call = ScheduledCall.from_json(raw)
        queue = call_queue(app, call)
        if queue in counts:
            counts[queue][
                TaskState.RETRYING if call.options.get("retries") else TaskState.SCHEDULED
            ] += 1
    for raw in _windowed(client, keys.ARCHIVE_INDEX, keys.archive_record):
        queue = json.loads(raw).get("queue") or ""
        if queue in counts:
            counts[queue][TaskState.ARCHIVED] += 1
    for group_id in client.sscan_iter(keys.AGGREGATION_GROUPS, count=WINDOW):
        entry = group_entry(app, client, as_text(group_id))
        if entry is not None and entry.queue in counts:
            counts[entry.queue][TaskState.AGGREGATING] += 1
    window = min(kit_of(app).settings.broker.result_expires, counters.RETENTION)
    for queue, done in counters.totals(client, queues, window).items():
        counts[queue][TaskState.COMPLETED] = done["processed"]
    return counts


def _windowed(client: redis.Redis, index: str, record: keys.Prefix) -> Any:
    """The JSON record of every id in the sorted set ``index``, :data:`WINDOW` at a time."""
    start = 0
    while True:
        ids = [as_text(i) for i in client.zrange(index, start, start + WINDOW - 1)]
        if ids:
            yield from (raw for raw in client.mget([record(i) for i in ids]) if raw is not None)
        if len(ids) < WINDOW:
            return
        start += WINDOW


def queue_overview(app: Celery, client: redis.Redis) -> list[dict[str, Any]]:
    """Per configured queue: paused or not, the count of every state, and its latency (the
    oldest waiting message's age in seconds, None when none waits)."""
    queues = list(kit_of(app).settings.broker.queue_weights)
    waiting = pending(client, queues, time.time())
    counts = count_states(app, client, queues, waiting)
    paused = paused_queues(client)
    return [
        {
            "queue": queue,
            "paused": queue in paused,
            "counts": {state.value: n for state, n in counts[queue].items()},
            "latency_seconds": waiting[queue].oldest_age,
        }
        for queue in queues
    ]
