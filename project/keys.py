"""Every Redis key the kit writes, as named prefixes (kombu's and Celery's keys are theirs).

All live on the broker's Redis (``REDIS_URL``), under ``kit:`` so they never collide with
kombu's queue lists (``critical``, ``default``, ``low``, ``unacked`` ...) or Celery's results.
"""

from __future__ import annotations

__all__ = [
    "AGGREGATION_BATCH_PREFIX",
    "AGGREGATION_GROUPS",
    "AGGREGATION_INFLIGHT",
    "AGGREGATION_ITEMS_PREFIX",
    "AGGREGATION_LOCK",
    "AGGREGATION_TIMES_PREFIX",
    "ARCHIVE_INDEX",
    "ARCHIVE_RECORD_PREFIX",
    "FORWARDER_LOCK",
    "MAIL_PENDING_PREFIX",
    "MAIL_RATE_PREFIX",
    "MAIL_SENT_PREFIX",
    "MAIL_SLOT_PREFIX",
    "PAUSED",
    "REQUEUE_HOLD_PREFIX",
    "RUNNING_PREFIX",
    "SCHEDULED",
    "SCHEDULED_INFLIGHT",
    "SCHEDULED_RECORD_PREFIX",
    "TASK_ID_PREFIX",
    "UNIQUE_PREFIX",
    "UP_LOCK",
    "WORKFLOW_PREFIX",
    "archive_record",
    "scheduled_record",
    "workflow",
]

#: Sorted set of archived task ids, scored by the time they were archived (Unix seconds).
ARCHIVE_INDEX = "kit:archived"
#: ``kit:archived:<task id>``: the archived task's JSON record.
ARCHIVE_RECORD_PREFIX = "kit:archived:"
#: Held by the running ``kit up`` supervisor (value: host, pid and start time).
UP_LOCK = "kit:up:lock"
#: ``kit:unique:<key>``: the unique-enqueue lock; value: the id of the task holding it.
UNIQUE_PREFIX = "kit:unique:"
#: ``kit:taskid:<task id>``: a caller-chosen task id in use until its task finishes.
TASK_ID_PREFIX = "kit:taskid:"
#: ``kit:running:<key>``: the single-flight lock of a running task; value: its task id.
RUNNING_PREFIX = "kit:running:"
#: Sorted set of durably delayed task ids, scored by due time (Unix seconds).
SCHEDULED = "kit:scheduled"
#: Sorted set of delayed task ids being published, scored by claim time.
SCHEDULED_INFLIGHT = "kit:scheduled:inflight"
#: ``kit:scheduled:task:<task id>``: the JSON of a delayed call.
SCHEDULED_RECORD_PREFIX = "kit:scheduled:task:"
#: Held by the worker whose forwarder publishes due delayed tasks.
FORWARDER_LOCK = "kit:forwarder:lock"
#: ``kit:mail:sent:<Message-ID>``: the SMTP server accepted this message (value: its reply).
MAIL_SENT_PREFIX = "kit:mail:sent:"
#: ``kit:mail:pending:<Message-ID>``: the message was being handed over (DATA) and the outcome
#: is not known yet, or never became known: it may have been delivered.
MAIL_PENDING_PREFIX = "kit:mail:pending:"
#: ``kit:mail:rate:<domain>`` (or ``kit:mail:rate:*`` for the global limit): a token bucket.
MAIL_RATE_PREFIX = "kit:mail:rate:"
#: ``kit:mail:slot:<Message-ID>``: the time (ms) a throttled message may be sent at, reserved.
MAIL_SLOT_PREFIX = "kit:mail:slot:"
#: Set of paused queue names (``kit queue pause``).
PAUSED = "kit:paused"
#: ``kit:requeueing:<task id>``: a record being requeued, restored if the requeue died.
REQUEUE_HOLD_PREFIX = "kit:requeueing:"
#: ``kit:workflow:<workflow id>``: a workflow's kind and step ids (project.workflows.state).
WORKFLOW_PREFIX = "kit:workflow:"
#: Set of the aggregation groups holding members, as ``<aggregator>|<group key>``.
AGGREGATION_GROUPS = "kit:agg:groups"
#: ``kit:agg:items:<aggregator>|<group key>``: list of the held members' JSON, oldest first.
AGGREGATION_ITEMS_PREFIX = "kit:agg:items:"
#: ``kit:agg:times:<aggregator>|<group key>``: hash of the first and last member's add time.
AGGREGATION_TIMES_PREFIX = "kit:agg:times:"
#: Sorted set of claimed batches being published, scored by claim time.
AGGREGATION_INFLIGHT = "kit:agg:inflight"
#: ``kit:agg:batch:<batch id>``: a claimed batch's JSON until its aggregate task is published.
AGGREGATION_BATCH_PREFIX = "kit:agg:batch:"
#: Held by the worker whose aggregation flusher hands full or due groups to their aggregators.
AGGREGATION_LOCK = "kit:agg:lock"


def workflow(workflow_id: str) -> str:
    return f"{WORKFLOW_PREFIX}{workflow_id}"


def archive_record(task_id: str) -> str:
    return f"{ARCHIVE_RECORD_PREFIX}{task_id}"


def scheduled_record(task_id: str) -> str:
    return f"{SCHEDULED_RECORD_PREFIX}{task_id}"
