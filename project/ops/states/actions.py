"""What an operator does to a task: delete, archive, run now, requeue, purge a queue.

Each move is one Lua script, conditional on the task still being where it was found, so a
worker or forwarder that takes it at the same moment either gets it (the action then fails
with :class:`TaskStateError`, the task runs once) or does not (the action wins, it never runs):

* pending: ``LREM`` of the exact payload from its priority list. The workers' fetch is a
  script too, so the message is either popped or removed, never both;
* in the durable schedule: ``ZREM`` of its id, which the forwarder's claim also takes;
* archived: ``ZREM`` from the archive index.

A task a worker holds for its ETA (a countdown under ``KIT_DURABLE_DELAY_THRESHOLD``) is in
the worker's memory, out of Redis's reach: it is revoked (the worker drops it when due) and
its ``unacked`` record removed, so no restart brings it back. ``run`` then publishes a copy
without the ETA under :func:`copy_id`, and ``archive`` archives it under that id: workers
drop a revoked id whenever it comes (until they restart), so it cannot run again. Workers
forget a revocation after Celery's three hours (``CELERY_WORKER_REVOKE_EXPIRES``): with the
durable schedule off (``KIT_DURABLE_DELAY_THRESHOLD=0``), a task held for longer may still run.
One due within :data:`HELD_MARGIN` seconds is left alone: the revocation could arrive after it
started.

Every action logs one line (id, queue, from-state, action; never arguments): the audit trail
of ``kit task`` and the console. No metric: neither process exports any (the kit has no
operator-action counter), and the moves themselves show in ``kit.queue.depth``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis
from celery import Celery

from project import keys
from project.broker.connections import as_text
from project.broker.queues import queue_keys
from project.coordination.locks import RedisLock
from project.delay.forwarder import publish_call
from project.delay.scheduled import DurableSchedule, ScheduledCall
from project.enqueue.dedup import HEADER_TASK_ID_LOCK, HEADER_UNIQUE_KEY, release_finished
from project.errors import TaskStateError, UnknownQueueError
from project.ops import archived as archived_ops
from project.ops.states.listing import WINDOW, check_queue
from project.ops.states.lookup import Found, locate
from project.ops.states.model import TaskState, as_state
from project.ops.states.sources import (
    UNACKED,
    UNACKED_INDEX,
    Message,
    call_queue,
    unacked_message,
)
from project.retries.archive import ArchivedTask, Reason

__all__ = [
    "HELD_MARGIN",
    "archive_task",
    "copy_id",
    "delete_task",
    "purge_queue",
    "requeue_task",
    "run_task",
]

logger = logging.getLogger(__name__)

#: The states ``purge_queue`` empties.
PURGEABLE = ["pending", "scheduled", "retrying", "archived"]
#: Seconds before its ETA within which a task held by a worker is no longer revoked.
HELD_MARGIN = 2.0

# KEYS: the list, the archive record, the archive index. ARGV: payload, record JSON, time.
# Without a record (ARGV[2] == ''), a delete.
_TAKE_PENDING = """
if redis.call('lrem', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if ARGV[2] ~= '' then
  redis.call('set', KEYS[2], ARGV[2])
  redis.call('zadd', KEYS[3], ARGV[3], ARGV[4])
end
return 1
"""
# KEYS: the schedule, the call's record, then the archive record and index, or the in-flight
# set. ARGV: id, mode ('delete', 'archive' or 'run'), record JSON, time.
_TAKE_SCHEDULED = """
if redis.call('zrem', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[2] == 'run' then
  redis.call('zadd', KEYS[3], ARGV[4], ARGV[1])
  return 1
end
redis.call('del', KEYS[2])
if ARGV[2] == 'archive' then
  redis.call('set', KEYS[3], ARGV[3])
  redis.call('zadd', KEYS[4], ARGV[4], ARGV[1])
end
return 1
"""
# KEYS: a sorted set; ARGV: a record prefix, then ids. Removes each id still in the set and its
# record; returns how many.
_REMOVE_IDS = """
local removed = 0
for i = 2, #ARGV do
  if redis.call('zrem', KEYS[1], ARGV[i]) == 1 then
    redis.call('del', ARGV[1] .. ARGV[i])
    removed = removed + 1
  end
end
return removed
"""
# KEYS: every priority list of a queue. Returns how many messages they held.
_PURGE_LISTS = """
local n = 0
for _, key in ipairs(KEYS) do
  n = n + redis.call('llen', key)
  redis.call('del', key)
end
return n
"""


def copy_id(task_id: str) -> str:
    """The id of the copy ``run`` publishes for a task a worker held for its ETA."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kit-run:{task_id}"))


def delete_task(app: Celery, client: redis.Redis, task_id: str) -> TaskState:
    """Remove a pending, scheduled, retrying or archived task: it never runs."""
    found = locate(app, client, task_id)
    allowed = (TaskState.PENDING, TaskState.SCHEDULED, TaskState.RETRYING, TaskState.ARCHIVED)
    _require(found, "delete", allowed)
    if found.state is TaskState.ARCHIVED:
        taken = archived_ops.delete(client, [task_id]) == 1
    else:
        taken = _take(app, client, found, "delete")
    return _done(app, client, found, "delete", taken)


def archive_task(app: Celery, client: redis.Redis, task_id: str) -> TaskState:
    """Move a pending, scheduled or retrying task to the archive (reason
    :data:`Reason.OPERATOR`), where ``requeue`` can bring it back. One a worker holds for its
    ETA is revoked there and archived under :func:`copy_id` (its own id stays revoked)."""
    found = locate(app, client, task_id)
    _require(found, "archive", (TaskState.PENDING, TaskState.SCHEDULED, TaskState.RETRYING))
    return _done(app, client, found, "archive", _take(app, client, found, "archive"))


def run_task(app: Celery, client: redis.Redis, task_id: str) -> TaskState:
    """Make a scheduled, retrying or archived task pending now."""
    found = locate(app, client, task_id)
    _require(found, "run", (TaskState.SCHEDULED, TaskState.RETRYING, TaskState.ARCHIVED))
    if found.state is TaskState.ARCHIVED:
        return _requeue_archived(app, client, found, "run")
    return _done(app, client, found, "run", _take(app, client, found, "run"))


def requeue_task(app: Celery, client: redis.Redis, task_id: str) -> TaskState:
    """Publish an archived task again with a fresh retry budget (or a failed one whose
    result is all that is left of it), under its own id."""
    found = locate(app, client, task_id)
    meta = found.meta or {}
    if found.state is TaskState.COMPLETED and meta.get("name") and meta["status"] != "SUCCESS":
        options = {"task_id": task_id, "queue": meta.get("queue") or None}
        app.send_task(str(meta.get("name")), meta.get("args") or [], meta.get("kwargs"), **options)
        return _done(app, client, found, "requeue", True)
    _require(found, "requeue", (TaskState.ARCHIVED,), "archived or failed")
    return _requeue_archived(app, client, found, "requeue")


def purge_queue(app: Celery, client: redis.Redis, queue: str, state: TaskState | str) -> int:
    """Remove every task of ``queue`` in ``state`` (pending, scheduled, retrying or archived);
    returns how many. Tasks arriving meanwhile may stay; unique locks of purged tasks are left
    to their TTL (a purge reads no message)."""
    check_queue(app, queue)
    wanted = as_state(state)
    if wanted is TaskState.PENDING:
        removed = int(client.eval(_PURGE_LISTS, len(queue_keys(queue)), *queue_keys(queue)))
    elif wanted is TaskState.ARCHIVED:
        removed = _purge_index(client, keys.ARCHIVE_INDEX, keys.archive_record, _archived_in(queue))
    elif wanted in (TaskState.SCHEDULED, TaskState.RETRYING):
        removed = _purge_held(app, client, queue, wanted) + _purge_index(
            client, keys.SCHEDULED, keys.scheduled_record, _scheduled_in(app, queue, wanted)
        )
    else:
        raise UnknownQueueError("purge state", wanted.value, PURGEABLE)
    logger.info("operator purge: %d %s task(s) of queue %s", removed, wanted.value, queue)
    return removed


# -- the moves ------------------------------------------------------------------------------


def _require(
    found: Found, action: str, allowed: tuple[TaskState, ...], says: str | None = None
) -> None:
    if found.state not in allowed:
        names = says or ", ".join(s.value for s in allowed)
        raise TaskStateError(found.entry.id, found.state.value, action, names)


def _take(app: Celery, client: redis.Redis, found: Found, mode: str) -> bool:
    """Remove the task from where it was found, atomically; False when it had moved on."""
    now = time.time()
    record = _record(found).to_json() if mode == "archive" else ""
    if found.call is not None:
        tail = (
            [keys.SCHEDULED_INFLIGHT]
            if mode == "run"
            else [keys.archive_record(found.entry.id), keys.ARCHIVE_INDEX]
        )
        script_keys = [keys.SCHEDULED, keys.scheduled_record(found.entry.id), *tail]
        taken = client.eval(
            _TAKE_SCHEDULED, len(script_keys), *script_keys, found.entry.id, mode, record, now
        )
        if taken and mode == "run":  # claimed like the forwarder claims: published, then gone
            publish_call(app, found.call)
            DurableSchedule(client).complete(found.entry.id)
        return bool(taken)
    message = found.message
    assert message is not None and found.key is not None
    if found.state is TaskState.PENDING:
        return bool(
            client.eval(
                _TAKE_PENDING,
                3,
                found.key,
                keys.archive_record(found.entry.id),
                keys.ARCHIVE_INDEX,
                message.raw,
                record,
                now,
                found.entry.id,
            )
        )
    return _take_held(app, client, found, message, mode, record)


def _take_held(
    app: Celery, client: redis.Redis, found: Found, message: Message, mode: str, record: str
) -> bool:
    """Revoke a task a worker holds for its ETA and drop its ``unacked`` record; for ``run``
    and ``archive``, publish or archive its copy first: a command that dies half-way leaves
    the task to run (at least once, as every task), never lost."""
    eta = message.eta
    if eta is None or eta - time.time() < HELD_MARGIN:
        return False
    tag, copy = str(found.key), copy_id(found.entry.id)
    if mode == "run":
        args, kwargs, _ = message.body()
        app.send_task(
            found.entry.name,
            args,
            kwargs,
            task_id=copy,
            queue=message.queue,
            priority=message.properties.get("priority"),
            retries=int(message.headers.get("retries") or 0),
        )
    with client.pipeline(transaction=True) as pipe:
        if record:  # under the copy's id: a requeue of the revoked id would be dropped again
            pipe.set(keys.archive_record(copy), record)
            pipe.zadd(keys.ARCHIVE_INDEX, {copy: time.time()})
        pipe.hdel(UNACKED, tag)
        pipe.zrem(UNACKED_INDEX, tag)
        pipe.execute()
    app.control.revoke(found.entry.id)
    return True


def _record(found: Found) -> ArchivedTask:
    entry = found.entry
    if found.call is not None:
        args, kwargs = list(found.call.args), dict(found.call.kwargs)
        priority = found.call.options.get("priority")
    else:
        assert found.message is not None
        args, kwargs, _ = found.message.body()
        priority = found.message.properties.get("priority")
    return ArchivedTask(
        id=copy_id(entry.id) if found.held else entry.id,
        task=entry.name,
        reason=Reason.OPERATOR,
        error_type="ArchivedByOperator",
        error=f"archived by operator while {entry.state.value}",
        queue=entry.queue,
        args=args,
        kwargs=kwargs,
        attempts=max(0, entry.attempts - 1),
        priority=priority,
    )


def _requeue_archived(app: Celery, client: redis.Redis, found: Found, action: str) -> TaskState:
    done, skipped = archived_ops.requeue(app, client, [found.entry.id])
    if skipped and not done:
        raise TaskStateError(
            found.entry.id, "archived", action, "archived tasks whose message was JSON"
        )
    return _done(app, client, found, action, done == 1)


def _done(app: Celery, client: redis.Redis, found: Found, action: str, taken: bool) -> TaskState:
    entry = found.entry
    if not taken:  # a worker or the forwarder took it first: say where it went
        try:
            now = locate(app, client, entry.id).state.value
        except Exception:
            now = "gone"
        raise TaskStateError(
            entry.id, f"no longer {entry.state.value} (now {now})", action, entry.state.value
        )
    if action in ("delete", "archive"):
        _release_locks(client, found, action)
    logger.info(
        "operator %s: task %s (%s) in queue %s, was %s",
        action,
        entry.id,
        entry.name,
        entry.queue,
        entry.state.value,
    )
    return entry.state


def _release_locks(client: redis.Redis, found: Found, action: str) -> None:
    """Free the unique and task-id locks the task held (:mod:`project.enqueue.dedup`), as the
    worker does when a task is archived; a deleted task frees its unique lock whatever its
    policy (as Asynq's delete does): the work it stood for will not be done."""
    if found.message is not None:
        headers: Any = found.message.headers
    elif found.call is not None:
        headers = found.call.options.get("headers") or {}
    else:
        return
    task_id = found.entry.id
    if action == "archive":
        release_finished(client, headers, task_id, "archived")
        return
    if headers.get(HEADER_TASK_ID_LOCK):
        RedisLock(client, keys.task_id_lock(task_id), task_id, 1).release()
    if headers.get(HEADER_UNIQUE_KEY):
        RedisLock(client, keys.unique(str(headers[HEADER_UNIQUE_KEY])), task_id, 1).release()


# -- purges ---------------------------------------------------------------------------------


def _purge_index(
    client: redis.Redis, index: str, record: keys.Prefix, chosen: Callable[[Any], bool]
) -> int:
    removed, rank = 0, 0
    while True:
        ids = [as_text(i) for i in client.zrange(index, rank, rank + WINDOW - 1)]
        raws = client.mget([record(i) for i in ids]) if ids else []
        doomed = [i for i, raw in zip(ids, raws, strict=True) if raw is not None and chosen(raw)]
        gone = int(client.eval(_REMOVE_IDS, 1, index, record, *doomed)) if doomed else 0
        removed += gone
        rank += len(ids) - gone
        if len(ids) < WINDOW:
            return removed


def _archived_in(queue: str) -> Callable[[Any], bool]:
    return lambda raw: ArchivedTask.from_json(raw).queue == queue


def _scheduled_in(app: Celery, queue: str, state: TaskState) -> Callable[[Any], bool]:
    def chosen(raw: Any) -> bool:
        call = ScheduledCall.from_json(raw)
        retrying = bool(call.options.get("retries"))
        return call_queue(app, call) == queue and retrying == (state is TaskState.RETRYING)

    return chosen


def _purge_held(app: Celery, client: redis.Redis, queue: str, state: TaskState) -> int:
    removed = 0
    for tag, raw in list(client.hscan_iter(UNACKED, count=WINDOW)):
        message = unacked_message(raw)
        if message is None or message.queue != queue:
            continue
        if message.state_when_held(time.time() + HELD_MARGIN) is state:
            found = Found(message.entry(state), message, as_text(tag))
            removed += _take_held(app, client, found, message, "delete", "")
    return removed
