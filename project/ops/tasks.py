"""One task, wherever it is: its result, archive record, durable schedule entry, or worker."""

from __future__ import annotations

from typing import Any

import redis
from celery import Celery

from project import keys
from project.delay.scheduled import ScheduledCall
from project.ops.states.lookup import held
from project.retries.archive import Archive

__all__ = ["cancel", "show"]


def _scheduled(client: redis.Redis, task_id: str) -> ScheduledCall | None:
    raw = client.get(keys.scheduled_record(task_id))
    return ScheduledCall.from_json(raw) if raw is not None else None


def _held_by_worker(client: redis.Redis, task_id: str) -> dict[str, Any] | None:
    found = held(client, task_id)
    if found is None or found.message is None:
        return None
    headers = found.message.headers
    return {"queue": found.message.queue, "eta": headers.get("eta"), "task": headers.get("task")}


def show(app: Celery, client: redis.Redis, task_id: str) -> dict[str, Any] | None:
    """Everything the kit knows about ``task_id``; None when it knows nothing."""
    result = app.AsyncResult(task_id)
    meta = app.backend.get_task_meta(task_id)
    archived = Archive(client, 1).get(task_id)
    scheduled = _scheduled(client, task_id)
    held = _held_by_worker(client, task_id)
    known_state = meta.get("status") not in (None, "PENDING")
    if not (known_state or archived or scheduled or held):
        return None
    info: dict[str, Any] = {"id": task_id, "state": result.state}
    if known_state:
        info["result"] = repr(meta.get("result"))
        info["date_done"] = str(meta.get("date_done"))
        if meta.get("traceback"):
            info["traceback"] = meta["traceback"]
    if scheduled is not None:
        info["scheduled"] = {
            "task": scheduled.task,
            "due": scheduled.due,
            "args": scheduled.args,
            "kwargs": scheduled.kwargs,
        }
    if held is not None:
        info["held_by_worker"] = held
    if archived is not None:
        info["archived"] = {
            "task": archived.task,
            "queue": archived.queue,
            "reason": archived.reason,
            "error": f"{archived.error_type}: {archived.error}",
            "attempts": archived.attempts,
            "args": archived.args,
            "kwargs": archived.kwargs,
            "traceback": archived.traceback,
        }
    return info


def cancel(app: Celery, client: redis.Redis, task_id: str, terminate: bool = False) -> str:
    """Revoke ``task_id`` everywhere; a durably scheduled one is dropped from the schedule."""
    with client.pipeline(transaction=True) as pipe:
        pipe.zrem(keys.SCHEDULED, task_id)
        pipe.delete(keys.scheduled_record(task_id))
        removed = bool(pipe.execute()[0])
    app.control.revoke(task_id, terminate=terminate, signal="SIGTERM")
    if removed:
        app.backend.mark_as_revoked(task_id, reason="cancelled before it was due")
        return "removed from the schedule and revoked"
    return "revoked" + (" and terminated if running" if terminate else "")
