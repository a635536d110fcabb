"""What the console reads and does, as plain blocking functions (run in the handlers' pool).

The task lists and actions are :mod:`project.ops.states`'s; pause and resume are
:mod:`project.broker.pause`'s; the chart's numbers :mod:`project.ops.counters`'s; cron entries
:mod:`project.periodic.cron_admin`'s. This module only combines them for the pages and the API.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from project.broker import pause as pausing
from project.broker.connections import as_text
from project.ops import counters
from project.ops.states.actions import PURGEABLE as PURGE_STATES
from project.ops.stats import UNACKED

if TYPE_CHECKING:
    from project.console.base import Context

__all__ = [
    "ACTIONS",
    "BULK_PAGE",
    "INSPECT_TIMEOUT",
    "actions_for",
    "bulk",
    "cron",
    "overview",
    "redis_info",
    "series",
    "set_paused",
    "task_action",
    "workers",
]

INSPECT_TIMEOUT = 1.0  # seconds workers get to answer Celery's inspect broadcasts
BULK_PAGE = 500  # tasks read per round of an action on all tasks of a state
ACTIONS = ("run", "archive", "delete", "requeue")
#: The actions each state allows (what the pages offer; :mod:`project.ops.states` decides).
ALLOWED = {
    "pending": ("archive", "delete"),
    "scheduled": ("run", "archive", "delete"),
    "retrying": ("run", "archive", "delete"),
    "archived": ("run", "requeue", "delete"),
}
#: States whose "delete all" is one purge.
PURGEABLE = tuple(PURGE_STATES)
UNACKED_INDEX = "unacked_index"  # kombu's sorted set of delivery tags by fetch (lease) time


def actions_for(state: str, failed: bool = False) -> tuple[str, ...]:
    """A finished task that failed without being archived can still be requeued."""
    if state == "completed" and failed:
        return ("requeue",)
    return ALLOWED.get(state, ())


def overview(context: Context) -> list[dict[str, Any]]:
    from project.ops.states import queue_overview

    return queue_overview(context.app, context.client)


def series(context: Context, minutes: int) -> dict[str, list[int]]:
    return counters.per_minute(context.client, context.queues, minutes)


def set_paused(context: Context, queue: str, paused: bool) -> bool:
    """True if the queue changed state."""
    change = pausing.pause if paused else pausing.resume
    return change(context.client, queue)


def _action(name: str) -> Callable[..., Any]:
    from project.ops import states

    return {
        "run": states.run_task,
        "archive": states.archive_task,
        "delete": states.delete_task,
        "requeue": states.requeue_task,
    }[name]


def task_action(context: Context, action: str, task_id: str) -> tuple[str, str]:
    """Run ``action`` on one task: the state it left, and the id it goes by now (run or
    archive of an ETA task a worker holds revokes it and goes on under a copy's id)."""
    from project.ops import states

    left = str(_action(action)(context.app, context.client, task_id))
    if action in ("run", "archive"):
        copy = states.copy_id(task_id)
        try:
            states.find_task(context.app, context.client, copy)
        except states.UnknownTaskError:
            return left, task_id
        return left, copy
    return left, task_id


def bulk(
    context: Context, queue: str, state: str, action: str, ids: list[str] | None
) -> tuple[int, int]:
    """``action`` on the tasks ``ids``, or on every task of ``queue`` in ``state`` (None):
    (done, skipped). A task that left the state meanwhile, or that the action does not apply
    to, is skipped. "All" lists the state's ids first, then acts: acting while paging would
    move the cursor's ground, and a task that stays listed is never acted on twice."""
    from project.errors import StateError
    from project.ops import states

    if ids is None and action == "delete" and state in PURGEABLE:
        return states.purge_queue(context.app, context.client, queue, state), 0
    if ids is None:
        ids = _all_ids(context, queue, state)
    act = _action(action)
    done = skipped = 0
    for task_id in dict.fromkeys(ids):
        try:
            act(context.app, context.client, task_id)
        except StateError:
            skipped += 1
            continue
        done += 1
    return done, skipped


def _all_ids(context: Context, queue: str, state: str) -> list[str]:
    from project.ops.states import list_tasks

    ids: list[str] = []
    cursor = None
    while True:
        page = list_tasks(context.app, context.client, queue, state, limit=BULK_PAGE, cursor=cursor)
        ids += [entry.id for entry in page.entries]
        cursor = page.next_cursor
        if cursor is None:
            return ids


def cron(context: Context) -> list[dict[str, Any]]:
    from project.periodic.cron_admin import list_entries

    return [row.as_dict() for row in list_entries(context.app)]


def _leases(client: redis.Redis) -> dict[str, dict[str, Any]]:
    """Task id -> queue, ETA and seconds since its lease was last renewed, of every message a
    worker holds (kombu's ``unacked`` hash and its ``unacked_index`` of lease times)."""
    now = time.time()
    renewed = {as_text(tag): score for tag, score in client.zscan_iter(UNACKED_INDEX)}
    held: dict[str, dict[str, Any]] = {}
    for tag, raw in client.hscan_iter(UNACKED, count=1000):
        try:
            message, _exchange, routing_key = json.loads(raw)
            headers = message.get("headers") or {}
        except (ValueError, TypeError, AttributeError):
            continue
        score = renewed.get(as_text(tag))
        held[str(headers.get("id"))] = {
            "task": headers.get("task"),
            "queue": routing_key,
            "eta": headers.get("eta"),
            "lease_age": None if score is None else round(max(0.0, now - score), 1),
        }
    return held


def workers(context: Context) -> dict[str, Any]:
    """Each answering worker (concurrency, queues, running tasks with their lease), and the
    held messages no answering worker runs (ETA tasks held in memory, or a dead worker's)."""
    inspect = context.app.control.inspect(timeout=INSPECT_TIMEOUT)
    stats = inspect.stats() or {}
    active = inspect.active() or {}
    leases = _leases(context.client)
    rows = []
    running: set[str] = set()
    for name in sorted(set(stats) | set(active)):
        info = stats.get(name) or {}
        tasks = []
        for request in active.get(name) or []:
            task_id = str(request.get("id"))
            running.add(task_id)
            lease = leases.get(task_id, {})
            tasks.append(
                {
                    "id": task_id,
                    "name": request.get("name") or request.get("type"),
                    "queue": (request.get("delivery_info") or {}).get("routing_key"),
                    "started": request.get("time_start"),
                    "lease_age": lease.get("lease_age"),
                }
            )
        rows.append(
            {
                "name": name,
                "concurrency": (info.get("pool") or {}).get("max-concurrency"),
                "pid": info.get("pid"),
                "active": tasks,
            }
        )
    others = [
        {"id": task_id, **lease} for task_id, lease in leases.items() if task_id not in running
    ]
    return {"workers": rows, "held": sorted(others, key=lambda row: str(row["id"]))}


MEMORY_FIELDS = (
    "used_memory_human",
    "used_memory_peak_human",
    "maxmemory_human",
    "maxmemory_policy",
    "mem_fragmentation_ratio",
)
PERSISTENCE_FIELDS = (
    "loading",
    "aof_enabled",
    "aof_last_write_status",
    "aof_last_bgrewrite_status",
    "aof_rewrite_in_progress",
    "rdb_changes_since_last_save",
    "rdb_last_save_time",
    "rdb_last_bgsave_status",
)


def redis_info(context: Context) -> dict[str, dict[str, Any]]:
    """The fields of INFO memory and persistence an operator looks at first, then the rest."""
    result = {}
    for section, first in (("memory", MEMORY_FIELDS), ("persistence", PERSISTENCE_FIELDS)):
        info = context.client.info(section)
        ordered = {k: info[k] for k in first if k in info}
        ordered.update({k: v for k, v in sorted(info.items()) if k not in ordered})
        result[section] = ordered
    return result
