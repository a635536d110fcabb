"""Durable delayed tasks: long countdowns and ETAs wait in Redis, not in a worker's memory.

Celery's Redis transport hands an ETA task to a worker at once; the worker holds it until it is
due. A restart loses nothing only if the worker got to hand it back, and a visibility timeout
shorter than the delay redelivers it to a second worker: a duplicate. Like Asynq's scheduled
set, the kit keeps a task delayed by more than ``KIT_DURABLE_DELAY_THRESHOLD`` seconds in a
sorted set scored by its due time; a forwarder (:mod:`project.delay.forwarder`) publishes it
when due.

Layout (:mod:`project.keys`): ``kit:scheduled`` (id → due time), the JSON of each call at
``kit:scheduled:task:<id>``, and ``kit:scheduled:inflight`` (id → claim time, while being
published). Claiming
moves an id from the first set to the last in one Lua script, so two forwarders never publish the
same task; a claim older than :data:`CLAIM_TIMEOUT` (its forwarder died mid-publish) is returned
to the schedule.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import redis
from opentelemetry import propagate, trace

from project import keys
from project.broker.connections import as_text
from project.lifecycle.kit import kit_of

__all__ = ["CLAIM_TIMEOUT", "DurableSchedule", "ScheduledCall", "delay_of", "schedule_durably"]

logger = logging.getLogger(__name__)
_tracer = trace.get_tracer("project.delay.scheduled")

CLAIM_TIMEOUT = 60.0  # seconds a claimed task may take to be published before it is re-queued

#: Options that are process-local objects, never stored.
_LOCAL_OPTIONS = frozenset({"producer", "connection", "publisher", "add_to_parent", "task_type"})

_CLAIM = """
local due = redis.call('zrangebyscore', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do
  redis.call('zrem', KEYS[1], id)
  redis.call('zadd', KEYS[2], ARGV[3], id)
end
return due
"""
_RECOVER = """
local stale = redis.call('zrangebyscore', KEYS[2], '-inf', ARGV[1])
for _, id in ipairs(stale) do
  redis.call('zrem', KEYS[2], id)
  redis.call('zadd', KEYS[1], ARGV[2], id)
end
return #stale
"""


def delay_of(countdown: Any = None, eta: Any = None, now: float | None = None) -> float:
    """Seconds from now until the task is due (0 when it is due already or has no delay)."""
    now = time.time() if now is None else now
    if eta is not None:
        if isinstance(eta, str):
            eta = datetime.fromisoformat(eta)
        if isinstance(eta, datetime):
            if eta.tzinfo is None:
                eta = eta.replace(tzinfo=timezone.utc)
            return max(0.0, float(eta.timestamp()) - now)
    if countdown is not None:
        return max(0.0, float(countdown))
    return 0.0


@dataclass(frozen=True)
class ScheduledCall:
    task_id: str
    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    due: float

    def to_json(self) -> str:
        return json.dumps(
            {
                "task_id": self.task_id,
                "task": self.task,
                "args": self.args,
                "kwargs": self.kwargs,
                "options": self.options,
                "due": self.due,
            },
            separators=(",", ":"),
            default=_jsonable,
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> ScheduledCall:
        return cls(**json.loads(raw))


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def storable_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options worth keeping: no delay (it is the score) and no process-local objects."""
    return {
        name: value
        for name, value in options.items()
        if name not in _LOCAL_OPTIONS and name not in ("countdown", "eta") and value is not None
    }


class DurableSchedule:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def add(self, call: ScheduledCall) -> None:
        payload = call.to_json()  # raises TypeError before anything is written
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.scheduled_record(call.task_id), payload)
            pipe.zadd(keys.SCHEDULED, {call.task_id: call.due})
            pipe.execute()

    def claim_due(self, now: float | None = None, limit: int = 100) -> list[ScheduledCall]:
        """Move due tasks to in-flight and return them, oldest first."""
        now = time.time() if now is None else now
        ids = self._redis.eval(
            _CLAIM, 2, keys.SCHEDULED, keys.SCHEDULED_INFLIGHT, now, limit, time.time()
        )
        if not ids:
            return []
        raws = self._redis.mget([keys.scheduled_record(as_text(i)) for i in ids])
        calls = [ScheduledCall.from_json(raw) for raw in raws if raw is not None]
        return sorted(calls, key=lambda call: call.due)

    def complete(self, task_id: str) -> None:
        """The task was published: forget it."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.SCHEDULED_INFLIGHT, task_id)
            pipe.delete(keys.scheduled_record(task_id))
            pipe.execute()

    def recover_stale_claims(self, timeout: float = CLAIM_TIMEOUT) -> int:
        """Return claims older than ``timeout`` to the schedule, due at once."""
        now = time.time()
        return int(
            self._redis.eval(
                _RECOVER, 2, keys.SCHEDULED, keys.SCHEDULED_INFLIGHT, now - timeout, now
            )
        )

    def count(self) -> int:
        return int(self._redis.zcard(keys.SCHEDULED)) + int(
            self._redis.zcard(keys.SCHEDULED_INFLIGHT)
        )

    def upcoming(self, limit: int = 100) -> list[ScheduledCall]:
        ids = [as_text(i) for i in self._redis.zrange(keys.SCHEDULED, 0, limit - 1)]
        if not ids:
            return []
        raws = self._redis.mget([keys.scheduled_record(i) for i in ids])
        return [ScheduledCall.from_json(raw) for raw in raws if raw is not None]


def schedule_durably(
    app: Any, name: str, args: Any, kwargs: Any, options: dict[str, Any], delay: float
) -> Any:
    """Store a delayed call; its AsyncResult, or None when its options cannot be stored (the
    caller then takes Celery's in-memory path)."""
    task_id = options.get("task_id") or str(uuid.uuid4())
    with _tracer.start_as_current_span(f"schedule/{name}", kind=trace.SpanKind.PRODUCER) as span:
        span.set_attributes({"task.id": task_id, "task.name": name, "task.delay": delay})
        stored = storable_options(options)
        headers = dict(stored.get("headers") or {})
        propagate.inject(headers)  # the forwarder publishes in this span's trace
        stored["headers"] = headers
        call = ScheduledCall(
            task_id=task_id,
            task=name,
            args=list(args or ()),
            kwargs=dict(kwargs or {}),
            options={k: v for k, v in stored.items() if k != "task_id"},
            due=time.time() + delay,
        )
        try:
            DurableSchedule(kit_of(app).redis).add(call)
        except TypeError as exc:
            logger.warning("%s[%s] kept in worker memory, not Redis: %s", name, task_id, exc)
            return None
    return app.AsyncResult(task_id, task_name=name)
