"""The forwarder: publishes durably delayed tasks (:mod:`project.delay.scheduled`) when they are due.

Every worker runs one in its main process; a Redis lock (:mod:`project.coordination.locks`) makes exactly one
of them active at a time, and another takes over within the lock's TTL if that worker dies. A
forwarded task keeps its id, arguments and options, and its trace: the publish happens in the
trace context saved when the task was scheduled.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from opentelemetry import context as otel_context
from opentelemetry import propagate

from project import keys
from project.broker.connections import redis_client
from project.config import current_settings
from project.coordination.leader import LeaderLoop, run_in_workers
from project.delay.scheduled import DurableSchedule, ScheduledCall
from project.errors import PermanentError
from project.retries.archive import Archive, ArchivedTask, Reason

__all__ = ["Forwarder", "install_forwarder"]

logger = logging.getLogger(__name__)


class Forwarder(LeaderLoop):
    thread_name = "kit-forwarder"

    def __init__(self, app: Celery, interval: float) -> None:
        super().__init__(keys.FORWARDER_LOCK, interval)
        self.app = app
        self.schedule = DurableSchedule(redis_client(current_settings().redis_url))

    def round(self) -> int:
        """Publish every due task. Returns how many."""
        self.schedule.recover_stale_claims()
        published = 0
        while not self.stopping:
            calls = self.schedule.claim_due()
            if not calls:
                break
            for call in calls:
                try:
                    self._publish(call)
                    published += 1
                except PermanentError as exc:
                    # Refused now (a limit changed since it was scheduled): archived, not
                    # retried at every round forever.
                    self._archive(call, exc)
                self.schedule.complete(call.task_id)
        return published

    def _archive(self, call: ScheduledCall, exc: Exception) -> None:
        settings = current_settings()
        record = ArchivedTask(
            id=call.task_id,
            task=call.task,
            reason=Reason.PERMANENT,
            error_type=type(exc).__name__,
            error=f"refused when its delay ended: {exc}",
            queue=call.options.get("queue"),
            args=list(call.args),
            kwargs=dict(call.kwargs),
            attempts=0,
        )
        Archive(redis_client(settings.redis_url), settings.archive_max_size).add(record)
        logger.error("delayed task %s[%s] refused and archived: %s", call.task, call.task_id, exc)

    def _publish(self, call: ScheduledCall) -> None:
        options: dict[str, Any] = dict(call.options)
        headers = dict(options.get("headers") or {})
        token = otel_context.attach(propagate.extract(headers))
        try:
            task = self.app.tasks.get(call.task)
            if task is not None:
                task.apply_async(call.args, call.kwargs, task_id=call.task_id, **options)
            else:
                self.app.send_task(
                    call.task, call.args, call.kwargs, task_id=call.task_id, **options
                )
        finally:
            otel_context.detach(token)
        logger.info("forwarded delayed task %s[%s]", call.task, call.task_id)


def install_forwarder(app: Celery) -> None:
    """Run a forwarder in each worker's main process, from ready to shutdown."""

    def forwarder() -> Forwarder | None:
        settings = current_settings()
        if settings.durable_delay_threshold <= 0:
            return None
        return Forwarder(app, settings.forwarder_interval)

    run_in_workers(app, "forwarder", forwarder)
