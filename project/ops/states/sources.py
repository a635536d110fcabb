"""Reading what Redis holds into :class:`~project.ops.states.model.TaskEntry` rows.

Four shapes: kombu's message (a queue list's item; ``unacked`` holds ``[message, exchange,
routing_key]``), the durable schedule's :class:`~project.delay.scheduled.ScheduledCall`, the
archive's :class:`~project.retries.archive.ArchivedTask`, and Celery's result meta (extended:
``result_extended`` puts the task name, arguments, queue and worker in it). ``kit stats``
(:mod:`project.ops.stats`) reads the same shapes through :func:`unacked_message`.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

from celery import Celery

from project.broker.queues import PUBLISHED_AT_HEADER
from project.delay.scheduled import ScheduledCall
from project.ops.states.model import TaskEntry, TaskState, clip
from project.retries.archive import ArchivedTask
from project.telemetry.redaction import redact_text

__all__ = [
    "UNACKED",
    "UNACKED_INDEX",
    "Message",
    "archived_entry",
    "call_queue",
    "decode_message",
    "error_text",
    "result_entry",
    "scheduled_entry",
    "unacked_message",
]

UNACKED = "unacked"  # kombu's hash of delivered, unacknowledged messages: tag -> record
UNACKED_INDEX = "unacked_index"  # kombu's sorted set of those tags, by fetch (or lease) time


class Message:
    """A kombu message as Redis holds it; the body is decoded only when asked for."""

    def __init__(self, raw: str | bytes, data: dict[str, Any], queue: str) -> None:
        self.raw = raw
        self.data = data
        self.queue = queue
        self.headers: dict[str, Any] = data.get("headers") or {}
        self.properties: dict[str, Any] = data.get("properties") or {}

    @property
    def id(self) -> str:
        return str(self.headers.get("id") or "")

    @property
    def tag(self) -> str:
        return str(self.properties.get("delivery_tag") or "")

    @property
    def eta(self) -> float | None:
        """Unix seconds the message waits for, or None (no ETA)."""
        eta = self.headers.get("eta")
        if not eta:
            return None
        try:
            when = datetime.fromisoformat(str(eta))
        except ValueError:
            return None
        return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()

    def body(self) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
        """``(args, kwargs, embed)`` of a JSON task message; empty ones when it is not one."""
        try:
            body = self.data.get("body") or ""
            if self.properties.get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args, kwargs, embed = json.loads(body)
            return list(args), dict(kwargs), dict(embed or {})
        except (ValueError, TypeError):
            return [], {}, {}

    def entry(self, state: TaskState, worker: str | None = None) -> TaskEntry:
        args, kwargs, _ = self.body()
        retries = int(self.headers.get("retries") or 0)
        published = self.headers.get(PUBLISHED_AT_HEADER)
        return TaskEntry(
            id=self.id,
            name=str(self.headers.get("task") or ""),
            queue=self.queue,
            state=state,
            args=clip(args),
            kwargs=clip(kwargs),
            attempts=retries + 1,
            error=None,
            enqueued_at=float(published) if published is not None else None,
            due_at=self.eta if state in (TaskState.SCHEDULED, TaskState.RETRYING) else None,
            finished_at=None,
            worker=worker,
        )

    def state_when_held(self, now: float) -> TaskState:
        """A message held by a worker: running, or waiting for its ETA."""
        eta = self.eta
        if eta is None or eta <= now:
            return TaskState.ACTIVE
        return TaskState.RETRYING if self.headers.get("retries") else TaskState.SCHEDULED


def decode_message(raw: str | bytes, queue: str) -> Message | None:
    try:
        data = json.loads(raw)
    except (ValueError, TypeError):
        return None
    return Message(raw, data, queue) if isinstance(data, dict) else None


def unacked_message(raw: str | bytes) -> Message | None:
    """An ``unacked`` record (``[message, exchange, routing_key]``) as its message."""
    try:
        message, _exchange, routing_key = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if not isinstance(message, dict):
        return None
    return Message(json.dumps(message), message, str(routing_key))


def call_queue(app: Celery, call: ScheduledCall) -> str:
    """The queue a durably delayed call will be published to."""
    queue = call.options.get("queue")
    if queue:
        return str(getattr(queue, "name", queue))
    task = app.tasks.get(call.task)
    return str(getattr(task, "default_queue", None) or app.conf.task_default_queue or "default")


def scheduled_entry(app: Celery, call: ScheduledCall, error: str | None = None) -> TaskEntry:
    retries = int(call.options.get("retries") or 0)
    headers = call.options.get("headers") or {}
    published = headers.get(PUBLISHED_AT_HEADER) if isinstance(headers, dict) else None
    return TaskEntry(
        id=call.task_id,
        name=call.task,
        queue=call_queue(app, call),
        state=TaskState.RETRYING if retries else TaskState.SCHEDULED,
        args=clip(call.args),
        kwargs=clip(call.kwargs),
        attempts=retries + 1,
        error=error,
        enqueued_at=float(published) if published is not None else None,
        due_at=call.due,
        finished_at=None,
        worker=None,
    )


def archived_entry(record: ArchivedTask) -> TaskEntry:
    return TaskEntry(
        id=record.id,
        name=record.task,
        queue=record.queue or "",
        state=TaskState.ARCHIVED,
        args=clip(record.args),
        kwargs=clip(record.kwargs),
        attempts=record.attempts,
        error=redact_text(f"{record.error_type}: {record.error}"),
        enqueued_at=None,
        due_at=None,
        finished_at=record.archived_at,
        worker=record.hostname,
    )


def error_text(meta: dict[str, Any]) -> str | None:
    """A stored exception (Celery's ``{"exc_type", "exc_message"}``) as "Type: message"."""
    result = meta.get("result")
    if not isinstance(result, dict) or "exc_type" not in result:
        return None
    message = result.get("exc_message")
    if isinstance(message, list | tuple):
        message = ", ".join(str(m) for m in message)
    return redact_text(f"{result['exc_type']}: {message}")


def result_entry(meta: dict[str, Any]) -> TaskEntry:
    """A stored result (``result_extended``) as a completed row."""
    done = meta.get("date_done")
    try:
        finished = datetime.fromisoformat(str(done)).timestamp() if done else None
    except ValueError:
        finished = None
    return TaskEntry(
        id=str(meta.get("task_id") or ""),
        name=str(meta.get("name") or ""),
        queue=str(meta.get("queue") or ""),
        state=TaskState.COMPLETED,
        args=clip(meta.get("args") or []),
        kwargs=clip(meta.get("kwargs") or {}),
        attempts=int(meta.get("retries") or 0) + 1,
        error=None,
        enqueued_at=None,
        due_at=None,
        finished_at=finished,
        worker=meta.get("worker"),
    )
