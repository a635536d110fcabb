"""The base class of every task on the kit's app: Asynq's retry rules and archive on Celery.

* an error in :data:`~project.retries.backoff.TRANSIENT_ERRORS` (or the class's ``transient_errors``)
  is retried after :func:`~project.retries.backoff.backoff_delay`, up to ``max_retries`` times;
* :class:`~project.errors.PermanentError`, and any error not known to be transient, fails at
  once with no retry;
* a task that fails for good (either way, or by running out of retries) is archived with its
  payload, error, traceback and attempts, before its message is acknowledged;
* de-duplication (:mod:`project.enqueue.dedup`): ``apply_unique``, locks released as a task finishes,
  and ``single_flight = True`` for one running instance per key across all workers.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from billiard.exceptions import WorkerLostError
from celery import Task, signals
from celery.exceptions import Ignore, Reject, Retry
from celery.worker.request import Request

from project.broker.connections import redis_client
from project.config import current_settings
from project.delay.scheduled import delay_of, schedule_durably
from project.enqueue.dedup import (
    DEFAULT_SINGLE_FLIGHT_TTL,
    DEFAULT_UNIQUE_TTL,
    ReleasePolicy,
    SingleFlight,
    enqueue_unique,
    release_finished,
    unique_key,
)
from project.errors import PermanentError, ValidationError
from project.ops import counters as stats
from project.retries.archive import Archive, ArchivedTask, Reason
from project.retries.backoff import TRANSIENT_ERRORS, backoff_delay

__all__ = ["SKIPPED", "KitTask"]

logger = logging.getLogger(__name__)

_CONTROL_FLOW = (Retry, Ignore, Reject)
#: Result state of a single-flight task skipped because its key was running elsewhere.
SKIPPED = "SKIPPED"


class KitRequest(Request):  # type: ignore[misc]
    """Celery's worker-side request, with the task's context during a hard time limit.

    The hard limit is handled in the worker's main process, where Celery calls ``on_failure``
    without the request on the task's stack: the archive record then had no queue, priority or
    attempt count. Here the context is pushed around it, as Celery does for a lost worker.
    """

    def on_timeout(self, soft: bool, timeout: float) -> None:
        if soft:
            super().on_timeout(soft, timeout)
            return
        self.task.request_stack.push(self._context)
        try:
            super().on_timeout(soft, timeout)
        finally:
            self.task.request_stack.pop()


class KitTask(Task):  # type: ignore[misc]
    """Celery ``Task`` with typed retry classification and archiving on final failure."""

    Request = "project.lifecycle.task:KitRequest"

    #: Errors that are retried with backoff; everything else fails at once.
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = TRANSIENT_ERRORS
    max_retries = current_settings().max_retries
    #: Seconds before a task whose pool process died (OOM, segfault) runs again; after
    #: ``max_retries`` such deaths it is archived instead of crashing workers forever.
    default_retry_delay = current_settings().retry_backoff
    #: The queue this task goes to unless the caller names one (see project.broker.queues).
    default_queue: ClassVar[str | None] = None
    #: At most one running instance per :meth:`single_flight_key` across all workers.
    single_flight: ClassVar[bool] = False
    #: Seconds a dead runner's single-flight lock blocks the key (renewed while running).
    single_flight_ttl: ClassVar[float] = DEFAULT_SINGLE_FLIGHT_TTL
    #: When the key is busy: "retry" (later, with backoff) or "skip" (drop this instance).
    single_flight_busy: ClassVar[str] = "retry"

    def apply_unique(
        self,
        args: Any = None,
        kwargs: Any = None,
        *,
        key: str | None = None,
        ttl: float = DEFAULT_UNIQUE_TTL,
        policy: ReleasePolicy | str = ReleasePolicy.ON_SUCCESS,
        on_duplicate: str = "raise",
        **options: Any,
    ) -> Any:
        """``apply_async`` through :func:`project.enqueue.dedup.enqueue_unique`."""
        return enqueue_unique(
            self.signature(args, kwargs, **options),
            key=key,
            ttl=ttl,
            policy=policy,
            on_duplicate=on_duplicate,
        )

    def apply_async(
        self,
        args: Any = None,
        kwargs: Any = None,
        task_id: str | None = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: Any = None,
        **options: Any,
    ) -> Any:
        """Celery's ``apply_async``, except that a delay above KIT_DURABLE_DELAY_THRESHOLD is
        kept in Redis until due (:mod:`project.delay.scheduled`) instead of in a worker's memory."""
        _check_delivery_options(options)
        # A producer's call, not Celery re-sending a retry or a worker publishing a chain step
        # (whose arguments were checked when the chain was first published).
        if "retries" not in options and "parent_id" not in options:
            self.check_arguments(args, kwargs, options)
        threshold = current_settings().durable_delay_threshold
        if threshold > 0 and not self.app.conf.task_always_eager:
            delay = delay_of(options.get("countdown"), options.get("eta"))
            if delay > threshold:
                scheduled = schedule_durably(
                    self,
                    args,
                    kwargs,
                    {
                        **options,
                        "task_id": task_id,
                        "link": link,
                        "link_error": link_error,
                        "shadow": shadow,
                    },
                    delay,
                )
                if scheduled is not None:
                    return scheduled
        return super().apply_async(
            args, kwargs, task_id, producer, link, link_error, shadow, **options
        )

    def check_arguments(self, args: Any, kwargs: Any, options: dict[str, Any]) -> None:
        """Raise ValidationError before anything is published; catalog tasks override it."""

    def single_flight_key(self, args: Any, kwargs: Any) -> str:
        """The key two running instances must not share; by default name and arguments."""
        return unique_key(self.name, "", args, kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.request.called_directly:  # a plain function call: no broker, no retries
            return super().__call__(*args, **kwargs)
        if not self.single_flight:
            return self._run_classified(args, kwargs)
        flight = SingleFlight(
            self.single_flight_key(args, kwargs), self.request.id, self.single_flight_ttl
        )
        if not flight.acquire():
            return self._busy(flight)
        try:
            return self._run_classified(args, kwargs)
        finally:
            flight.release()

    def _busy(self, flight: SingleFlight) -> Any:
        holder = flight.holder()
        if self.single_flight_busy == "skip":
            logger.info("%s[%s] skipped: %s is running it", self.name, self.request.id, holder)
            # A terminal state of its own, so callers and Flower see why it never ran.
            self.update_state(state=SKIPPED, meta={"running": holder})
            raise Ignore()
        # Waiting for the key is not a failure: it does not use up the retry budget.
        retries = int(self.request.retries or 0)
        raise self.retry(countdown=self.retry_countdown(), max_retries=retries + 1)

    def _run_classified(self, args: Any, kwargs: Any) -> Any:
        try:
            return self.run(*args, **kwargs)
        except _CONTROL_FLOW:
            raise
        except PermanentError:
            raise
        except self.transient_errors as exc:
            raise self.retry(exc=exc, countdown=self.retry_countdown()) from exc

    def retry_countdown(self) -> float:
        """Delay before the next attempt, from the configured backoff policy."""
        settings = current_settings()
        return backoff_delay(
            self.request.retries,
            base=settings.retry_backoff,
            cap=settings.retry_backoff_max,
            jitter=settings.retry_jitter,
        )

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        self._count("processed")
        release_finished(self.request, task_id, "success")

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        self._archive(exc, task_id, args, kwargs, einfo)
        self._count("failed")
        release_finished(self.request, task_id, "archived")

    def _count(self, outcome: str) -> None:
        try:
            queue = (self.request.delivery_info or {}).get("routing_key") or "unknown"
            _tally.add(str(queue), outcome)
        except Exception:  # counters are best effort; never fail a task over them
            logger.debug("task counter not recorded", exc_info=True)

    def _archive(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        try:
            record = self._archived_record(exc, task_id, args, kwargs, einfo)
            settings = current_settings()
            Archive(redis_client(settings.redis_url), settings.archive_max_size).add(record)
        except Exception:  # a hook must not raise; the failure is still logged by Celery
            logger.exception("could not archive failed task %s[%s]", self.name, task_id)
        else:
            logger.warning(
                "archived task %s[%s] after %d attempt(s): %s",
                self.name,
                task_id,
                record.attempts,
                record.reason,
            )

    def _archived_record(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> ArchivedTask:
        # A hard time limit calls this hook in the worker's main process, outside the task's
        # request context: the queue and attempt count are unknown there.
        request = self.request if self.request.id == task_id else None
        delivery = (request.delivery_info if request else None) or {}
        if isinstance(exc, PermanentError):
            reason = Reason.PERMANENT
        elif isinstance(exc, self.transient_errors):
            reason = Reason.RETRIES_EXHAUSTED
        else:
            reason = Reason.UNEXPECTED
        return ArchivedTask(
            id=task_id,
            task=self.name,
            reason=reason,
            error_type=type(exc).__qualname__,
            error=str(exc),
            queue=delivery.get("routing_key"),
            args=list(args or ()),
            kwargs=dict(kwargs or {}),
            traceback=str(einfo) if einfo is not None else None,
            attempts=((request.retries or 0) if request else 0) + 1,
            max_retries=self.max_retries,
            priority=delivery.get("priority"),
            hostname=request.hostname if request else None,
            root_id=request.root_id if request else None,
            parent_id=request.parent_id if request else None,
        )


def _check_delivery_options(options: dict[str, Any]) -> None:
    """Refuse options Celery would silently bend: a priority outside 0-9 (kombu clamps it) and
    a negative countdown (it would run at once)."""
    priority = options.get("priority")
    if priority is not None and (
        isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9
    ):
        raise ValidationError(f"priority must be a whole number from 0 to 9, not {priority!r}")
    countdown = options.get("countdown")
    if countdown is not None and (
        isinstance(countdown, bool)
        or not isinstance(countdown, int | float)
        or countdown < 0
        or countdown != countdown
    ):
        raise ValidationError(f"countdown must be a number of seconds >= 0, not {countdown!r}")


#: This process's task counters (project.ops.counters), flushed every second and at process exit.
_tally = stats.Tally(lambda: redis_client(current_settings().redis_url))


@signals.worker_process_shutdown.connect(weak=False)
@signals.worker_shutdown.connect(weak=False)
def _flush_counters(**_: Any) -> None:
    _tally.flush()


@signals.task_failure.connect(weak=False)
def _archive_after_lost_workers(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    """A task whose pool process died more than ``max_retries`` times (task_retry_on_worker_lost)
    fails in the worker's main process, where Celery sends ``task_failure`` but never calls
    ``on_failure``: archive it here, like any other task that failed for good."""
    if isinstance(exception, WorkerLostError) and isinstance(sender, KitTask) and task_id:
        sender._archive(exception, task_id, args, kwargs, einfo)
        sender._count("failed")
        release_finished(sender.request, task_id, "archived")
