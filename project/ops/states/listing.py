"""``list_tasks``: one page of a queue's tasks in one state, read in windows, never whole.

Each state is read where it lives, a window at a time, so memory stays flat however long the
queue is (``LRANGE`` windows of the priority lists, ``ZRANGE`` windows of the schedule and
archive, ``HSCAN``/``SSCAN``/``SCAN`` batches of ``unacked``, the aggregation groups and the
results). The cursor is opaque text naming where the next page starts: ``<phase>:<a>:<b>``.
Pages of a list that changes while it is read may skip or repeat an entry, as with ``SCAN``.

======  ==========================================================  ===========================
phase   reads                                                       ``a``, ``b``
======  ==========================================================  ===========================
``p``   the queue's priority lists, most urgent first, oldest first  list index, offset from the
                                                                    right (kombu pops there)
``u``   ``unacked`` (held by workers: running or waiting for ETA)   ``HSCAN`` cursor, matches to
                                                                    skip in that batch
``z``   the durable schedule, soonest first                         rank, ``-``
``a``   the archive, newest first                                   rank, ``-``
``c``   Celery's results (``celery-task-meta-*``)                   ``SCAN`` cursor, skip
``g``   the aggregation groups                                      ``SSCAN`` cursor, skip
======  ==========================================================  ===========================
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import redis
from celery import Celery

from project import keys
from project.broker.connections import as_text
from project.broker.queues import queue_keys
from project.delay.scheduled import ScheduledCall
from project.errors import UnknownQueueError
from project.lifecycle.kit import kit_of
from project.ops.states.model import Page, TaskEntry, TaskState, as_state, clip
from project.ops.states.sources import (
    UNACKED,
    archived_entry,
    decode_message,
    error_text,
    result_entry,
    scheduled_entry,
    unacked_message,
)
from project.retries.archive import ArchivedTask

__all__ = ["MAX_LIMIT", "check_queue", "group_entry", "list_tasks", "result_client"]

#: The largest page ``list_tasks`` returns.
MAX_LIMIT = 1000
#: Items read per round trip while filling a page (a window, or a SCAN batch's COUNT).
WINDOW = 200
#: Seconds ``list_tasks`` waits for workers to say which of them runs each active task.
INSPECT_TIMEOUT = 1.0
#: Members of an aggregation group shown as its row's ``args``.
GROUP_PREVIEW = 5

Match = Callable[[Any], TaskEntry | None]


def check_queue(app: Celery, queue: str) -> str:
    known = list(kit_of(app).settings.broker.queue_weights)
    if queue not in known:
        raise UnknownQueueError("queue", queue, known)
    return queue


def result_client(app: Celery) -> redis.Redis:
    """The Redis holding Celery's results (``KIT_RESULT_BACKEND``, by default the next
    database after the broker's)."""
    client: redis.Redis = app.backend.client
    return client


def list_tasks(
    app: Celery,
    client: redis.Redis,
    queue: str,
    state: TaskState | str,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """One page of ``queue``'s tasks in ``state``, in the order they will run (pending,
    scheduled, retrying), newest first (archived), or as stored (the rest)."""
    check_queue(app, queue)
    wanted = as_state(state)
    limit = max(1, min(int(limit), MAX_LIMIT))
    phase, a, b = _parse(cursor, wanted)
    held: set[str] = set()  # the page's tasks that workers hold: ask them which node
    if wanted is TaskState.PENDING:
        entries, after = _pending(client, queue, limit, int(a), int(b))
    elif wanted is TaskState.ARCHIVED:
        entries, after = _ranked(
            client, keys.ARCHIVE_INDEX, keys.archive_record, int(a), limit, True, _archived(queue)
        )
    elif wanted is TaskState.COMPLETED:
        entries, after = _scanned(_results(app, queue), int(a), int(b), limit, "c")
    elif wanted is TaskState.AGGREGATING:
        entries, after = _scanned(_groups(app, client, queue), int(a), int(b), limit, "g")
    else:  # held by workers, then (scheduled, retrying) the durable schedule
        entries, after = [], None
        if phase == "u":
            entries, after = _scanned(_held(client, queue, wanted), int(a), int(b), limit, "u")
            held = {e.id for e in entries}
            if after is None and wanted is not TaskState.ACTIVE:
                phase, a = "z", "0"
        if phase == "z" and len(entries) >= limit:
            after = "z:0:0"
        elif phase == "z":
            more, after = _ranked(
                client,
                keys.SCHEDULED,
                keys.scheduled_record,
                int(a),
                limit - len(entries),
                False,
                _scheduled(app, queue, wanted),
            )
            entries += more
    return Page(_annotate(app, entries, held), after)


def _parse(cursor: str | None, state: TaskState) -> tuple[str, str, str]:
    first = {
        TaskState.PENDING: "p",
        TaskState.ARCHIVED: "a",
        TaskState.COMPLETED: "c",
        TaskState.AGGREGATING: "g",
    }.get(state, "u")
    if not cursor:
        return first, "0", "0"
    try:
        phase, a, b = cursor.split(":")
        int(a), int(b)
    except ValueError:
        raise UnknownQueueError("cursor", cursor, ["a next_cursor of this list"]) from None
    if phase != first and not (phase == "z" and state in (TaskState.SCHEDULED, TaskState.RETRYING)):
        raise UnknownQueueError("cursor", cursor, ["a next_cursor of this list"])
    return phase, a, b


# -- pending: LRANGE windows from the right end of each priority list ------------------------


def _pending(
    client: redis.Redis, queue: str, limit: int, index: int, offset: int
) -> tuple[list[TaskEntry], str | None]:
    lists = queue_keys(queue)
    entries: list[TaskEntry] = []
    while index < len(lists):
        want = min(WINDOW, limit - len(entries))
        window = client.lrange(lists[index], -(offset + want), -(offset + 1))
        for raw in reversed(window):  # the rightmost is the oldest: it runs first
            message = decode_message(raw, queue)
            if message is not None:
                entries.append(message.entry(TaskState.PENDING))
        offset += len(window)
        if len(window) < want:
            index, offset = index + 1, 0
        if len(entries) >= limit:
            return entries, (f"p:{index}:{offset}" if index < len(lists) else None)
    return entries, None


# -- ranked: ZRANGE windows of an index, the records read with MGET --------------------------


def _ranked(
    client: redis.Redis,
    index: str,
    record: keys.Prefix,
    rank: int,
    limit: int,
    newest_first: bool,
    match: Match,
) -> tuple[list[TaskEntry], str | None]:
    entries: list[TaskEntry] = []
    while True:
        read = client.zrevrange if newest_first else client.zrange
        ids = [as_text(i) for i in read(index, rank, rank + WINDOW - 1)]
        raws = client.mget([record(i) for i in ids]) if ids else []
        for raw in raws:
            rank += 1
            entry = match(raw) if raw is not None else None
            if entry is not None:
                entries.append(entry)
                if len(entries) >= limit:
                    return entries, f"{'a' if newest_first else 'z'}:{rank}:0"
        if len(ids) < WINDOW:
            return entries, None


def _archived(queue: str) -> Match:
    def match(raw: Any) -> TaskEntry | None:
        record = ArchivedTask.from_json(raw)
        return archived_entry(record) if record.queue == queue else None

    return match


def _scheduled(app: Celery, queue: str, state: TaskState) -> Match:
    def match(raw: Any) -> TaskEntry | None:
        entry = scheduled_entry(app, ScheduledCall.from_json(raw))
        return entry if entry.queue == queue and entry.state is state else None

    return match


# -- scanned: SCAN-like cursors, resumed inside a batch by skipping what was taken -----------

Batch = Callable[[int], tuple[int, Iterable[TaskEntry | None]]]


def _scanned(
    fetch: Batch, cursor: int, skip: int, limit: int, phase: str
) -> tuple[list[TaskEntry], str | None]:
    """Fill a page from batches; a page that ends inside a batch says so in its cursor (the
    batch's cursor and how many of its matches were taken), and the next page reads that
    batch again and skips them."""
    entries: list[TaskEntry] = []
    while True:
        following, batch = fetch(cursor)
        matched = [e for e in batch if e is not None][skip:]
        room = limit - len(entries)
        if len(matched) > room:
            entries += matched[:room]
            return entries, f"{phase}:{cursor}:{skip + room}"
        entries += matched
        skip, cursor = 0, following
        if cursor == 0:
            return entries, None
        if len(entries) == limit:
            return entries, f"{phase}:{cursor}:0"


def _held(client: redis.Redis, queue: str, state: TaskState) -> Batch:
    now = time.time()

    def fetch(cursor: int) -> tuple[int, list[TaskEntry | None]]:
        following, records = client.hscan(UNACKED, cursor, count=WINDOW)
        found: list[TaskEntry | None] = []
        for raw in cast("dict[Any, Any]", records).values():
            message = unacked_message(raw)
            if message and message.queue == queue and message.state_when_held(now) is state:
                found.append(message.entry(state))
        return int(following), found

    return fetch


def _results(app: Celery, queue: str) -> Batch:
    backend = result_client(app)
    pattern = f"{as_text(app.backend.task_keyprefix)}*"

    def fetch(cursor: int) -> tuple[int, list[TaskEntry | None]]:
        following, names = backend.scan(cursor, match=pattern, count=WINDOW)
        found: list[TaskEntry | None] = []
        for raw in backend.mget(names) if names else []:
            try:
                meta = json.loads(raw) if raw is not None else None
            except ValueError:
                continue
            if isinstance(meta, dict) and (meta.get("status"), meta.get("queue")) == (
                "SUCCESS",
                queue,
            ):
                found.append(result_entry(meta))
        return int(following), found

    return fetch


def _groups(app: Celery, client: redis.Redis, queue: str) -> Batch:
    def fetch(cursor: int) -> tuple[int, list[TaskEntry | None]]:
        following, names = client.sscan(keys.AGGREGATION_GROUPS, cursor, count=WINDOW)
        found = [group_entry(app, client, as_text(n)) for n in names]
        return int(following), [e for e in found if e is not None and e.queue == queue]

    return fetch


def group_entry(app: Celery, client: redis.Redis, group_id: str) -> TaskEntry | None:
    """An aggregation group as one row: id ``<aggregator>|<group>``, its first members as
    ``args``, its size and group key as ``kwargs``, due when a limit hands it over."""
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.aggregation_times(group_id))
        pipe.llen(keys.aggregation_items(group_id))
        pipe.lrange(keys.aggregation_items(group_id), 0, GROUP_PREVIEW - 1)
        times, size, preview = pipe.execute()
    if not size:
        return None
    info = {as_text(k): as_text(v) for k, v in times.items()}
    aggregator, _, group = group_id.partition("|")
    task = app.tasks.get(aggregator)
    queue = info.get("queue") or getattr(task, "default_queue", None) or "default"
    first, last = float(info.get("first") or 0), float(info.get("last") or 0)
    due = min(first + float(info.get("max_delay") or 0), last + float(info.get("grace") or 0))
    return TaskEntry(
        id=group_id,
        name=aggregator,
        queue=str(queue),
        state=TaskState.AGGREGATING,
        args=clip([json.loads(m).get("v") for m in preview]),
        kwargs=clip({"group": group, "size": int(size)}),
        attempts=0,
        error=None,
        enqueued_at=first or None,
        due_at=due or None,
        finished_at=None,
        worker=None,
    )


# -- what a page's rows lack: the last error of a retried task, the worker of a running one --


def _annotate(app: Celery, entries: list[TaskEntry], held: set[str]) -> list[TaskEntry]:
    """Add what a row lacks: the last error of a retried task (its stored RETRY result) and
    the worker holding each task of ``held`` (running it, or keeping it for its ETA)."""
    retried = [e for e in entries if e.attempts > 1 and e.error is None]
    errors: dict[str, str | None] = {}
    if retried:
        backend = app.backend
        raws = result_client(app).mget([backend.get_key_for_task(e.id) for e in retried])
        for entry, raw in zip(retried, raws, strict=True):
            if raw is not None:
                errors[entry.id] = error_text(json.loads(raw))
    workers = holders(app, sorted(held), INSPECT_TIMEOUT) if held else {}
    return [
        _replace(e, error=errors.get(e.id, e.error), worker=workers.get(e.id, e.worker))
        for e in entries
    ]


def holders(app: Celery, ids: list[str], timeout: float) -> dict[str, str]:
    """Task id -> the node holding it (running, reserved or waiting for its ETA), as the
    workers that answer Celery's ``query_task`` within ``timeout`` say."""
    replies = app.control.inspect(timeout=timeout).query_task(*ids) or {}
    return {str(task_id): node for node, tasks in replies.items() for task_id in tasks or {}}


def _replace(entry: TaskEntry, **changes: Any) -> TaskEntry:
    return dataclasses.replace(entry, **changes) if changes else entry
