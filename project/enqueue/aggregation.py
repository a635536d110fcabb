"""Aggregation, like Asynq's task groups: members held in Redis, handed over as one list.

Many small units of work ("notify user 7 of X") become one task ("send user 7 a digest"):
:func:`enqueue_grouped` holds a member in a group in Redis; a flusher hands the group's
members, oldest first, to the group's *aggregator* task as ``aggregator(items, group)`` when
the group reaches

* ``max_size`` members (the batch is exactly ``max_size`` long; the rest wait), or
* ``max_delay`` seconds since its oldest waiting member was added, or
* ``grace`` seconds with no new member,

whichever comes first. The limits travel with each :func:`enqueue_grouped`; the latest one wins.

Nothing held is lost when a process dies. Members live in Redis (``kit:agg:items:<group>``).
One Lua script moves a batch out of the group into a claim record and the in-flight set, so
two flushers never hand over the same members. The aggregator task is published with the batch
id as its task id, and only then is the claim dropped. A claim older than
:data:`CLAIM_TIMEOUT` (its flusher died between the two) is published again with the same id:
at least once, like every other task.

Every worker runs a flusher in its main process; a Redis lock makes one of them active.
Telemetry: each :func:`enqueue_grouped` is a ``hold/<aggregator>`` span whose context travels
with the member; the aggregator task's run span links to every member it absorbed (span links,
as OpenTelemetry's messaging conventions do for batches), in a trace of its own: the flusher
runs in the worker's main process, which under prefork exports no spans of its own.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from opentelemetry import metrics, propagate, trace

from project import keys
from project.broker.connections import as_text
from project.coordination.leader import LeaderLoop, LeaderMiddleware
from project.errors import ValidationError
from project.lifecycle.kit import default_kit, kit_of

__all__ = [
    "CLAIM_TIMEOUT",
    "DEFAULT_GRACE",
    "DEFAULT_MAX_DELAY",
    "DEFAULT_MAX_SIZE",
    "FLUSH_INTERVAL",
    "HEADER_LINKS",
    "Aggregator",
    "Batch",
    "Flusher",
    "Flushing",
    "enqueue_grouped",
    "link_members",
]

logger = logging.getLogger(__name__)
_tracer = trace.get_tracer("project.enqueue.aggregation")
_meter = metrics.get_meter("project.enqueue.aggregation")
_held = _meter.create_counter(
    "kit.aggregation.held", unit="{task}", description="Members added to aggregation groups"
)
_batch_size = _meter.create_histogram(
    "kit.aggregation.batch_size", unit="{task}", description="Members per aggregated task"
)

#: Members per batch unless :func:`enqueue_grouped` says otherwise.
DEFAULT_MAX_SIZE = 100
#: Seconds the oldest member may wait before its group is handed over.
DEFAULT_MAX_DELAY = 60.0
#: Seconds without a new member after which a group is handed over.
DEFAULT_GRACE = 10.0
#: Seconds between a flusher's rounds.
FLUSH_INTERVAL = 1.0
#: Seconds a claimed batch may take to be published before another round publishes it again.
CLAIM_TIMEOUT = 30.0
#: Message header with the ``traceparent`` of each absorbed member (span links).
HEADER_LINKS = "kit_links"
#: A member's JSON may not exceed this many bytes: a group is a list in Redis, not a blob store.
MAX_ITEM_BYTES = 64 * 1024
_SEP = "|"

_HOLD = """
local size = redis.call('rpush', KEYS[1], ARGV[1])
redis.call('hsetnx', KEYS[2], 'first', ARGV[2])
redis.call('hset', KEYS[2], 'last', ARGV[2], 'max_size', ARGV[3], 'max_delay', ARGV[4],
           'grace', ARGV[5], 'queue', ARGV[6])
redis.call('sadd', KEYS[3], ARGV[7])
return size
"""

# KEYS: items, times, groups, inflight, batch record. ARGV: now, group id, batch id.
_CLAIM = """
local size = redis.call('llen', KEYS[1])
if size == 0 then
  redis.call('del', KEYS[2])
  redis.call('srem', KEYS[3], ARGV[2])
  return false
end
local t = redis.call('hmget', KEYS[2], 'first', 'last', 'max_size', 'max_delay', 'grace', 'queue')
local now = tonumber(ARGV[1])
local first, last = tonumber(t[1]) or now, tonumber(t[2]) or now
local max_size = tonumber(t[3]) or 1
if size < max_size and now - first < (tonumber(t[4]) or 0) and now - last < (tonumber(t[5]) or 0)
then
  return false
end
local take = math.min(size, max_size)
local members = redis.call('lrange', KEYS[1], 0, take - 1)
redis.call('ltrim', KEYS[1], take, -1)
if size == take then
  redis.call('del', KEYS[1], KEYS[2])
  redis.call('srem', KEYS[3], ARGV[2])
else
  -- the oldest waiting member starts the next batch's max_delay clock
  local head = cjson.decode(redis.call('lindex', KEYS[1], 0))
  redis.call('hset', KEYS[2], 'first', head['t'])
end
local record = cjson.encode({id = ARGV[3], group = ARGV[2], queue = t[6] or '', members = members})
redis.call('set', KEYS[5], record)
redis.call('zadd', KEYS[4], now, ARGV[3])
return record
"""


def _group_id(aggregator: str, group: str) -> str:
    return f"{aggregator}{_SEP}{group}"


def _check(aggregator: str, group: str, max_size: int, max_delay: float, grace: float) -> None:
    if not aggregator or _SEP in aggregator:
        raise ValidationError(
            f"aggregation: aggregator must be a task name without '|', got {aggregator!r}"
        )
    if not isinstance(group, str) or not group or len(group) > 200:
        raise ValidationError(
            f"aggregation: group must be a string of 1-200 characters, got {group!r}"
        )
    if isinstance(max_size, bool) or not isinstance(max_size, int) or not 1 <= max_size <= 10_000:
        raise ValidationError(f"aggregation: max_size must be an integer 1-10000, got {max_size!r}")
    for name, value in (("max_delay", max_delay), ("grace", grace)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86_400:
            raise ValidationError(
                f"aggregation: {name} must be 0-86400 seconds (exclusive of 0), got {value!r}"
            )


def enqueue_grouped(
    aggregator: str | Any,
    item: Any,
    *,
    group: str,
    max_size: int = DEFAULT_MAX_SIZE,
    max_delay: float = DEFAULT_MAX_DELAY,
    grace: float = DEFAULT_GRACE,
    queue: str | None = None,
    client: redis.Redis | None = None,
    app: Celery | None = None,
) -> int:
    """Add ``item`` (JSON) to ``group``, for ``aggregator`` (a task or its name, on ``app``:
    by default the task's own app, or :data:`project.app`).

    Returns the number of members now waiting in the group. Raises :class:`ValidationError`
    for a bad group, limit or item, before anything is written.
    """
    name = aggregator if isinstance(aggregator, str) else str(getattr(aggregator, "name", ""))
    _check(name, group, max_size, max_delay, grace)
    try:
        encoded = json.dumps(item, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"aggregation: the item must be JSON: {exc}") from exc
    if len(encoded) > MAX_ITEM_BYTES:
        raise ValidationError(
            f"aggregation: the item is {len(encoded)} bytes, over {MAX_ITEM_BYTES}; "
            "store large data elsewhere and hold a reference"
        )
    client = client or default_kit(app or getattr(aggregator, "_app", None)).redis
    group_id = _group_id(name, group)
    with _tracer.start_as_current_span(f"hold/{name}", kind=trace.SpanKind.PRODUCER) as span:
        span.set_attributes({"aggregation.aggregator": name, "aggregation.group": group})
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        now = time.time()
        member = json.dumps(
            {"v": item, "t": now, "ctx": carrier.get("traceparent", "")}, separators=(",", ":")
        )
        size = int(
            client.eval(
                _HOLD,
                3,
                keys.aggregation_items(group_id),
                keys.aggregation_times(group_id),
                keys.AGGREGATION_GROUPS,
                member,
                now,
                max_size,
                float(max_delay),
                float(grace),
                queue or "",
                group_id,
            )
        )
        span.set_attribute("aggregation.waiting", size)
    _held.add(1, {"aggregation.aggregator": name})
    return size


@dataclass(frozen=True)
class Batch:
    """A claimed batch: the members handed to one aggregator task."""

    id: str
    aggregator: str
    group: str
    queue: str
    items: list[Any]
    links: list[str]  # traceparent of each member's hold span

    @classmethod
    def from_record(cls, raw: str | bytes) -> Batch:
        record = json.loads(raw)
        aggregator, _, group = str(record["group"]).partition(_SEP)
        members = [json.loads(m) for m in record.get("members") or []]
        return cls(
            id=str(record["id"]),
            aggregator=aggregator,
            group=group,
            queue=str(record.get("queue") or ""),
            items=[m["v"] for m in members],
            links=[m["ctx"] for m in members if m.get("ctx")],
        )


class Aggregator:
    """The Redis side: claim ready batches, recover stale claims, forget published ones."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def groups(self) -> list[str]:
        return sorted(as_text(g) for g in self._redis.smembers(keys.AGGREGATION_GROUPS))

    def waiting(self, aggregator: str, group: str) -> int:
        return int(self._redis.llen(keys.aggregation_items(_group_id(aggregator, group))))

    def claim(self, group_id: str, now: float | None = None) -> Batch | None:
        """Move the group's next batch to in-flight if the group is ready; else None."""
        batch_id = str(uuid.uuid4())
        raw = self._redis.eval(
            _CLAIM,
            5,
            keys.aggregation_items(group_id),
            keys.aggregation_times(group_id),
            keys.AGGREGATION_GROUPS,
            keys.AGGREGATION_INFLIGHT,
            keys.aggregation_batch(batch_id),
            time.time() if now is None else now,
            group_id,
            batch_id,
        )
        return Batch.from_record(raw) if raw else None

    def stale(self, timeout: float = CLAIM_TIMEOUT) -> list[Batch]:
        """Claims older than ``timeout``: their flusher died before forgetting them."""
        ids = self._redis.zrangebyscore(keys.AGGREGATION_INFLIGHT, "-inf", time.time() - timeout)
        batches = []
        for batch_id in ids:
            raw = self._redis.get(keys.aggregation_batch(as_text(batch_id)))
            if raw is None:
                self._redis.zrem(keys.AGGREGATION_INFLIGHT, as_text(batch_id))
            else:
                batches.append(Batch.from_record(raw))
        return batches

    def complete(self, batch_id: str) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.AGGREGATION_INFLIGHT, batch_id)
            pipe.delete(keys.aggregation_batch(batch_id))
            pipe.execute()


class Flusher(LeaderLoop):
    """Hands ready groups to their aggregators; one active per Redis, like the forwarder."""

    thread_name = "kit-aggregation"

    def __init__(self, app: Celery, interval: float = FLUSH_INTERVAL) -> None:
        super().__init__(kit_of(app).redis, keys.AGGREGATION_LOCK, interval)
        self.app = app
        self.store = Aggregator(kit_of(app).redis)

    def round(self) -> int:
        """Publish every ready batch (stale claims first). Returns how many."""
        published = 0
        for batch in self.store.stale():
            self.publish(batch)
            published += 1
        for group_id in self.store.groups():
            while not self.stopping and (ready := self.store.claim(group_id)) is not None:
                self.publish(ready)
                published += 1
        return published

    def publish(self, batch: Batch) -> None:
        contexts = [_span_context(tp) for tp in batch.links]
        with _tracer.start_as_current_span(
            f"flush/{batch.aggregator}",
            kind=trace.SpanKind.PRODUCER,
            links=[trace.Link(c) for c in contexts if c.is_valid],
        ) as span:
            span.set_attributes(
                {
                    "aggregation.aggregator": batch.aggregator,
                    "aggregation.group": batch.group,
                    "aggregation.size": len(batch.items),
                    "aggregation.batch_id": batch.id,
                }
            )
            options: dict[str, Any] = {"task_id": batch.id, "headers": {HEADER_LINKS: batch.links}}
            if batch.queue:
                options["queue"] = batch.queue
            args = (batch.items, batch.group)
            task = self.app.tasks.get(batch.aggregator)
            if task is not None:
                task.apply_async(args, **options)
            else:
                self.app.send_task(batch.aggregator, args, **options)
        self.store.complete(batch.id)
        _batch_size.record(len(batch.items), {"aggregation.aggregator": batch.aggregator})
        logger.info(
            "aggregated %d member(s) of %s into %s", len(batch.items), batch.group, batch.id
        )


def link_members(request: Any) -> None:
    """Span links from the current (run) span to the holds of the members it absorbed."""
    links = request.get(HEADER_LINKS) if request is not None else None
    if not links or not isinstance(links, list):
        return
    span = trace.get_current_span()
    if not span.is_recording():
        return
    for traceparent in links:
        if isinstance(traceparent, str) and (context := _span_context(traceparent)).is_valid:
            span.add_link(context)


def _span_context(traceparent: str) -> trace.SpanContext:
    return trace.get_current_span(
        propagate.extract({"traceparent": traceparent})
    ).get_span_context()


class Flushing(LeaderMiddleware):
    """Each worker runs a :class:`Flusher`; one of them leads."""

    def make_loop(self, consumer: Any) -> Flusher:
        return Flusher(consumer.app)
