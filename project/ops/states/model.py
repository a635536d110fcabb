"""The state model's values: a task's state, one row of a list, one task in full, one page.

Every value is JSON-able through ``as_dict`` (the console's API and ``kit task ls --json`` print
them as they are). Arguments are kept as truncated JSON text in a row, so a page of 50 rows
stays small whatever the tasks carry; the full payload is only in a :class:`TaskDetail`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from project.errors import UnknownQueueError

__all__ = ["ARGS_CHARS", "Page", "TaskDetail", "TaskEntry", "TaskState", "as_state", "clip"]

#: Characters of a row's ``args``/``kwargs`` JSON kept before an ellipsis.
ARGS_CHARS = 200


class TaskState(StrEnum):
    """Where a task is, as Asynq names it. The states are disjoint: a delayed retry is
    ``retrying``, not also ``scheduled`` (``kit stats`` counts retries among the scheduled)."""

    PENDING = "pending"  # in its queue's lists, waiting for a worker
    ACTIVE = "active"  # fetched by a worker, running (kombu's ``unacked``)
    SCHEDULED = "scheduled"  # delayed: in the durable schedule, or held by a worker for its ETA
    RETRYING = "retrying"  # a failed attempt's retry, delayed like a scheduled task
    ARCHIVED = "archived"  # failed for good, or archived by an operator
    COMPLETED = "completed"  # succeeded; kept as long as its result (KIT_RESULT_EXPIRES)
    AGGREGATING = "aggregating"  # an aggregation group collecting members


def as_state(state: TaskState | str) -> TaskState:
    try:
        return TaskState(state)
    except ValueError:
        raise UnknownQueueError("state", str(state), [s.value for s in TaskState]) from None


def clip(value: Any, limit: int = ARGS_CHARS) -> str:
    """``value`` as JSON text, cut to ``limit`` characters with an ellipsis."""
    text = json.dumps(value, default=repr, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class TaskEntry:
    """One row of a list."""

    id: str
    name: str
    queue: str
    state: TaskState
    args: str  # JSON text, truncated (:func:`clip`)
    kwargs: str
    attempts: int  # retries so far + 1 where known, else 0
    error: str | None  # the last error's "Type: message", or None
    enqueued_at: float | None  # Unix seconds
    due_at: float | None  # scheduled, retrying, aggregating: when it runs
    finished_at: float | None  # completed, archived
    worker: str | None  # active: the node running it, when a worker answered

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        row["state"] = self.state.value
        return row


@dataclass(frozen=True)
class TaskDetail:
    """One task in full: its row, and everything the kit holds about it."""

    entry: TaskEntry
    payload: dict[str, Any]  # args, kwargs, headers and options, as JSON-able values
    result: Any  # completed: the stored result, else None
    traceback: str | None
    trace_id: str | None  # 32 hex characters when the task carried a traceparent

    def as_dict(self) -> dict[str, Any]:
        return {
            "entry": self.entry.as_dict(),
            "payload": self.payload,
            "result": self.result,
            "traceback": self.traceback,
            "trace_id": self.trace_id,
        }


@dataclass(frozen=True)
class Page:
    """A window of a list; pass ``next_cursor`` back for the next one (None: the last)."""

    entries: list[TaskEntry]
    next_cursor: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "entries": [e.as_dict() for e in self.entries],
            "next_cursor": self.next_cursor,
        }
