"""Every Redis key the kit writes (kombu's and Celery's keys are theirs).

All live on the broker's Redis (``REDIS_URL``), under ``kit:`` so they never collide with
kombu's queue lists (``critical``, ``default``, ``low``, ``unacked`` ...) or Celery's results.
Every module names its keys through this one, so this is the list of what a deployment holds.
The names are deployed state (a kit reads what the previous version wrote): change one only
with a migration.

An UPPER name is one key. A lower one is a family of keys under a common prefix, a
:class:`Prefix`: ``keys.unique(k)`` is one lock's key, and ``keys.unique`` itself the prefix
(for a ``SCAN`` pattern, ``removeprefix``, or a Lua script that appends the ids).
"""

from __future__ import annotations

__all__ = [
    "AGGREGATION_GROUPS",
    "AGGREGATION_INFLIGHT",
    "AGGREGATION_LOCK",
    "ARCHIVE_INDEX",
    "BEAT_PREFIX",
    "FORWARDER_LOCK",
    "PAUSED",
    "SCHEDULED",
    "SCHEDULED_INFLIGHT",
    "UP_LOCK",
    "Prefix",
    "aggregation_batch",
    "aggregation_items",
    "aggregation_times",
    "archive_record",
    "mail_pending",
    "mail_rate",
    "mail_sent",
    "mail_slot",
    "queue_bell",
    "requeue_hold",
    "running",
    "scheduled_record",
    "stats",
    "task_id_lock",
    "unique",
    "workflow",
]


class Prefix(str):
    """A key prefix that builds its family's keys: ``Prefix("kit:unique:")("k")`` is
    ``"kit:unique:k"``. It is a ``str``, so it also goes where the bare prefix is wanted."""

    __slots__ = ()

    def __call__(self, suffix: str) -> str:
        return self + suffix  # a plain str


#: Sorted set of archived task ids, scored by the time they were archived (Unix seconds).
ARCHIVE_INDEX = "kit:archived"
#: ``kit:archived:<task id>``: the archived task's JSON record.
archive_record = Prefix("kit:archived:")
#: ``kit:requeueing:<task id>``: a record being requeued, restored if the requeue died.
requeue_hold = Prefix("kit:requeueing:")
#: ``kit:unique:<key>``: the unique-enqueue lock; value: the id of the task holding it.
unique = Prefix("kit:unique:")
#: ``kit:taskid:<task id>``: a caller-chosen task id in use until its task finishes.
task_id_lock = Prefix("kit:taskid:")
#: ``kit:running:<key>``: the single-flight lock of a running task; value: its task id.
running = Prefix("kit:running:")
#: Sorted set of durably delayed task ids, scored by due time (Unix seconds).
SCHEDULED = "kit:scheduled"
#: Sorted set of delayed task ids being published, scored by claim time.
SCHEDULED_INFLIGHT = "kit:scheduled:inflight"
#: ``kit:scheduled:task:<task id>``: the JSON of a delayed call.
scheduled_record = Prefix("kit:scheduled:task:")
#: Held by the worker whose forwarder publishes due delayed tasks.
FORWARDER_LOCK = "kit:forwarder:lock"
#: ``kit:mail:sent:<Message-ID>``: the SMTP server accepted this message (value: its reply).
mail_sent = Prefix("kit:mail:sent:")
#: ``kit:mail:pending:<Message-ID>``: the message was being handed over (DATA) and the outcome
#: is not known yet, or never became known: it may have been delivered.
mail_pending = Prefix("kit:mail:pending:")
#: ``kit:mail:rate:<domain>`` (or ``kit:mail:rate:*`` for the global limit): a token bucket.
mail_rate = Prefix("kit:mail:rate:")
#: ``kit:mail:slot:<Message-ID>``: the time (ms) a throttled message may be sent at, reserved.
mail_slot = Prefix("kit:mail:slot:")
#: Set of paused queue names (``kit queue pause``); the workers' fetch script reads it.
PAUSED = "kit:paused"
#: ``kit:bell:<queue>``: pushed to after each message published to the queue (or put back, or
#: resumed); idle workers block on it, so they wait for work without popping any message
#: (project.broker.transport). Its items carry nothing and may be lost: a worker also looks
#: every second.
queue_bell = Prefix("kit:bell:")
#: ``kit:workflow:<workflow id>``: a workflow's kind and step ids (project.workflows.state).
workflow = Prefix("kit:workflow:")
#: Set of the aggregation groups holding members, as ``<aggregator>|<group key>``.
AGGREGATION_GROUPS = "kit:agg:groups"
#: ``kit:agg:items:<aggregator>|<group key>``: list of the held members' JSON, oldest first.
aggregation_items = Prefix("kit:agg:items:")
#: ``kit:agg:times:<aggregator>|<group key>``: hash of the first and last member's add time.
aggregation_times = Prefix("kit:agg:times:")
#: Sorted set of claimed batches being published, scored by claim time.
AGGREGATION_INFLIGHT = "kit:agg:inflight"
#: ``kit:agg:batch:<batch id>``: a claimed batch's JSON until its aggregate task is published.
aggregation_batch = Prefix("kit:agg:batch:")
#: Held by the worker whose aggregation flusher hands full or due groups to their aggregators.
AGGREGATION_LOCK = "kit:agg:lock"
#: Held by the running ``kit up`` supervisor (value: host, pid and start time).
UP_LOCK = "kit:up:lock"
#: redbeat's key prefix (project.periodic.beat): ``kit:beat:<entry name>`` per schedule entry,
#: ``kit:beat::schedule`` (entry keys by next run), ``kit:beat::statics`` and the beat lock
#: ``kit:beat::lock``; redbeat builds these names itself from the prefix.
BEAT_PREFIX = "kit:beat:"


def stats(outcome: str, queue: str, minute: int) -> str:
    """``kit:stats:<outcome>:<queue>:<minute>``: a task counter of project.ops.counters."""
    return f"kit:stats:{outcome}:{queue}:{minute}"
