"""The forwarder: publishes durably delayed tasks (:mod:`project.delay.scheduled`) when due.

Every worker runs one in its main process; a Redis lock (:mod:`project.coordination.locks`) makes
exactly one of them active at a time, and another takes over within the lock's TTL if that worker
dies. A forwarded task keeps its id, arguments and options, and its trace: the publish happens in
the trace context saved when the task was scheduled.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from opentelemetry import context as otel_context
from opentelemetry import propagate

from project import keys
from project.coordination.leader import LeaderLoop, LeaderMiddleware
from project.delay.scheduled import DurableSchedule, ScheduledCall, delay_of, schedule_durably
from project.errors import PermanentError
from project.lifecycle.kit import kit_of
from project.retries.archive import ArchivedTask, Reason

__all__ = ["DurableDelay", "Forwarder", "publish_call"]

logger = logging.getLogger(__name__)


class Forwarder(LeaderLoop):
    thread_name = "kit-forwarder"

    def __init__(self, app: Celery, interval: float) -> None:
        super().__init__(kit_of(app).redis, keys.FORWARDER_LOCK, interval)
        self.app = app
        self.schedule = DurableSchedule(kit_of(app).redis)

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
        kit_of(self.app).archive().add(record)
        logger.error("delayed task %s[%s] refused and archived: %s", call.task, call.task_id, exc)

    def _publish(self, call: ScheduledCall) -> None:
        publish_call(self.app, call)
        logger.info("forwarded delayed task %s[%s]", call.task, call.task_id)


def publish_call(app: Celery, call: ScheduledCall) -> None:
    """Publish a delayed call now, with its id, options and the trace it was scheduled in
    (the forwarder when it is due; ``kit task run`` before)."""
    options: dict[str, Any] = dict(call.options)
    headers = dict(options.get("headers") or {})
    token = otel_context.attach(propagate.extract(headers))
    try:
        task = app.tasks.get(call.task)
        if task is not None:
            task.apply_async(call.args, call.kwargs, task_id=call.task_id, **options)
        else:
            app.send_task(call.task, call.args, call.kwargs, task_id=call.task_id, **options)
    finally:
        otel_context.detach(token)


class DurableDelay(LeaderMiddleware):
    """A delay above KIT_DURABLE_DELAY_THRESHOLD waits in Redis (:mod:`project.delay.scheduled`),
    not in a worker's memory; each worker runs a :class:`Forwarder`, one of them leading."""

    def before_apply(
        self, app: Any, name: str, args: Any, kwargs: Any, options: dict[str, Any]
    ) -> Any | None:
        threshold = kit_of(app).settings.delay.durable_delay_threshold
        if threshold <= 0:
            return None
        delay = delay_of(options.get("countdown"), options.get("eta"))
        if delay <= threshold:
            return None
        return schedule_durably(app, name, args, kwargs, options, delay)

    def make_loop(self, consumer: Any) -> Forwarder | None:
        settings = kit_of(consumer.app).settings.delay
        if settings.durable_delay_threshold <= 0:
            return None
        return Forwarder(consumer.app, settings.forwarder_interval)
