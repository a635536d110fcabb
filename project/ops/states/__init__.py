"""The state model: every task of every queue, by state, read from Redis; and the operator's
actions on them (``kit task``, the web console).

A task is in exactly one :class:`TaskState`, read where the kit and kombu keep it:

===========  ==================================================================================
pending      kombu's lists of its queue, one per priority (:func:`project.broker.queues.queue_keys`)
active       kombu's ``unacked`` hash (fetched, not yet acknowledged); the node from the workers
scheduled    the durable schedule (:mod:`project.delay.scheduled`), or ``unacked`` with an ETA
retrying     the same, for a retry (its ``retries`` is above 0); its last error from the result
archived     the archive (:mod:`project.retries.archive`)
completed    Celery's results (``result_extended``: name, arguments and queue in each)
aggregating  the aggregation groups (:mod:`project.enqueue.aggregation`), one row per group
===========  ==================================================================================

Lists are paged with opaque cursors and read in windows (:mod:`.listing`); lookups by id and
the per-queue counts are in :mod:`.lookup`, the atomic moves in :mod:`.actions`.
"""

from __future__ import annotations

from project.errors import StateError, TaskStateError, UnknownQueueError, UnknownTaskError
from project.ops.states.actions import (
    archive_task,
    copy_id,
    delete_task,
    purge_queue,
    requeue_task,
    run_task,
)
from project.ops.states.listing import list_tasks
from project.ops.states.lookup import count_states, find_task, queue_overview
from project.ops.states.model import Page, TaskDetail, TaskEntry, TaskState

__all__ = [
    "Page",
    "StateError",
    "TaskDetail",
    "TaskEntry",
    "TaskState",
    "TaskStateError",
    "UnknownQueueError",
    "UnknownTaskError",
    "archive_task",
    "copy_id",
    "count_states",
    "delete_task",
    "find_task",
    "list_tasks",
    "purge_queue",
    "queue_overview",
    "requeue_task",
    "run_task",
]
