"""Retries and the archive, as the kit's middleware: Asynq's retry rules on Celery.

* an error in the task's ``transient_errors`` (:data:`~project.retries.backoff.TRANSIENT_ERRORS`
  by default) is retried after :func:`~project.retries.backoff.backoff_delay`, up to
  ``max_retries`` times;
* :class:`~project.errors.PermanentError`, and any error not known to be transient, fails at
  once with no retry;
* a task that fails for good (either way, by running out of retries, by its hard time limit or
  by killing its pool process too often) is archived with its payload, error, traceback and
  attempts, before its message is acknowledged;
* a redelivered message of an attempt that was retried already is dropped, not run
  (:meth:`Retries.before_run`).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, states

from project.errors import PermanentError
from project.lifecycle.kit import kit_of
from project.lifecycle.middleware import Drop, Middleware
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
    def before_run(self, task: Task) -> Drop | None:
        """A redelivered message whose attempt was retried already is a stale copy: drop it.

        A retry publishes the next attempt, then stores RETRY (with the failed attempt's number,
        ``result_extended``), then acknowledges the failed attempt's message. When that
        acknowledgement is lost (the connection dropped: Redis restarting is when transient
        errors, and so retries, happen), the visibility timeout brings the old message back
        while its successor is queued: both would run. Celery skips a redelivered message
        whose task says SUCCESS; this is the same rule for RETRY: a message whose attempt
        number is not above the stored failed attempt's has a successor already. The
        successor itself, redelivered, has a higher number and runs. Only redeliveries pay the
        read (one GET), and a result that cannot be read runs the message (at least once).
        """
        request = task.request
        delivery = request.delivery_info
        if not (delivery and delivery.get("redelivered")):
            return None
        meta = task.backend.get_task_meta(request.id)
        retried = meta.get("retries")
        attempt = int(request.retries or 0)
        if meta.get("status") != states.RETRY or not isinstance(retried, int) or retried < attempt:
            return None
        return Drop(f"redelivered attempt {attempt + 1}, retried already as attempt {retried + 2}")

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
