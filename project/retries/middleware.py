"""Retries and the archive, as the kit's middleware: Asynq's retry rules on Celery.

* an error in the task's ``transient_errors`` (:data:`~project.retries.backoff.TRANSIENT_ERRORS`
  by default) is retried after :func:`~project.retries.backoff.backoff_delay`, up to
  ``max_retries`` times;
* :class:`~project.errors.PermanentError`, and any error not known to be transient, fails at
  once with no retry;
* a task that fails for good (either way, by running out of retries, by its hard time limit or
  by killing its pool process too often) is archived with its payload, error, traceback and
  attempts, before its message is acknowledged.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task

from project.errors import PermanentError
from project.lifecycle.kit import kit_of
from project.lifecycle.middleware import Middleware
from project.retries.archive import ArchivedTask, Reason
from project.retries.backoff import TRANSIENT_ERRORS, backoff_delay
from project.retries.settings import RetrySettings

__all__ = ["Retries", "archived_record", "countdown_for"]

logger = logging.getLogger(__name__)


def countdown_for(settings: RetrySettings, retries: int) -> float:
    """Seconds before retry number ``retries + 1``, by the app's backoff policy."""
    return backoff_delay(
        retries, base=settings.backoff, cap=settings.backoff_max, jitter=settings.jitter
    )


class Retries(Middleware):
    def classify(self, task: Task, exc: Exception) -> float | None:
        if isinstance(exc, PermanentError):
            return None
        if not isinstance(exc, getattr(task, "transient_errors", TRANSIENT_ERRORS)):
            return None
        return countdown_for(kit_of(task.app).settings.retries, int(task.request.retries or 0))

    def on_failure(self, task: Task, exc: BaseException, einfo: Any) -> None:
        record = archived_record(task, exc, einfo)
        kit_of(task.app).archive().add(record)
        logger.warning(
            "archived task %s[%s] after %d attempt(s): %s",
            task.name,
            record.id,
            record.attempts,
            record.reason,
        )


def archived_record(task: Task, exc: BaseException, einfo: Any) -> ArchivedTask:
    request = task.request
    delivery = request.delivery_info or {}
    if isinstance(exc, PermanentError):
        reason = Reason.PERMANENT
    elif isinstance(exc, getattr(task, "transient_errors", TRANSIENT_ERRORS)):
        reason = Reason.RETRIES_EXHAUSTED
    else:
        reason = Reason.UNEXPECTED
    return ArchivedTask(
        id=str(request.id),
        task=task.name,
        reason=reason,
        error_type=type(exc).__qualname__,
        error=str(exc),
        queue=delivery.get("routing_key"),
        args=list(request.args or ()),
        kwargs=dict(request.kwargs or {}),
        traceback=str(einfo) if einfo is not None else None,
        attempts=int(request.retries or 0) + 1,
        max_retries=task.max_retries,
        priority=delivery.get("priority"),
        hostname=request.hostname,
        root_id=request.root_id,
        parent_id=request.parent_id,
    )
