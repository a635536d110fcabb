"""The base class of every task on a kit app: Celery's ``Task``, calling the app's middleware.

It does no concern's work itself: each step of an attempt asks the app's
:class:`~project.lifecycle.middleware.Pipeline` (see :mod:`project.lifecycle` for the list),
and turns what the middleware answer into Celery's control flow: a countdown from
``classify`` becomes ``self.retry``, a :class:`Defer` a retry that does not use up the budget,
a :class:`Skip` a terminal state of its own, a :class:`Drop` Celery's ``Ignore`` (acknowledged,
nothing stored).

Class attributes a task may set: ``transient_errors`` (retried with backoff; everything else
fails at once and is archived), ``default_queue``, ``single_flight`` (one running instance per
:meth:`single_flight_key` across all workers) with ``single_flight_ttl`` and
``single_flight_busy``. ``max_retries`` and ``default_retry_delay`` default to the app's
``KIT_MAX_RETRIES`` and ``KIT_RETRY_BACKOFF``.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from celery import Task
from celery.exceptions import Ignore, Reject, Retry
from celery.worker.request import Request

from project.enqueue import direct
from project.enqueue.dedup import (
    DEFAULT_SINGLE_FLIGHT_TTL,
    DEFAULT_UNIQUE_TTL,
    SKIPPED,
    ReleasePolicy,
    enqueue_unique,
    unique_key,
)
from project.errors import PermanentError, ValidationError
from project.lifecycle.kit import Kit, kit_of
from project.lifecycle.middleware import Defer, Drop, Skip
from project.retries.backoff import TRANSIENT_ERRORS

__all__ = ["SKIPPED", "KitRequest", "KitTask"]

_CONTROL_FLOW = (Retry, Ignore, Reject)

logger = logging.getLogger(__name__)


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


class _FromSettings:
    """A class attribute whose default comes from the task's app (a subclass or
    ``@app.task(max_retries=3)`` overrides it like any class attribute)."""

    def __init__(self, part: str, field: str) -> None:
        self.part, self.field = part, field

    def __get__(self, task: Any, owner: type[Any] | None = None) -> Any:
        app = getattr(task if task is not None else owner, "_app", None)
        if app is None:
            return None
        return getattr(getattr(kit_of(app).settings, self.part), self.field)


class KitTask(Task):  # type: ignore[misc]
    """Celery ``Task`` whose attempts go through the app's middleware."""

    Request = "project.lifecycle.task:KitRequest"

    #: Errors that are retried with backoff; everything else fails at once.
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = TRANSIENT_ERRORS
    max_retries = _FromSettings("retries", "max_retries")
    #: Seconds before a task whose pool process died (OOM, segfault) runs again; after
    #: ``max_retries`` such deaths it is archived instead of crashing workers forever.
    default_retry_delay = _FromSettings("retries", "backoff")
    #: The queue this task goes to unless the caller names one (see project.broker.queues).
    default_queue: ClassVar[str | None] = None
    #: At most one running instance per :meth:`single_flight_key` across all workers.
    single_flight: ClassVar[bool] = False
    #: Seconds a dead runner's single-flight lock blocks the key (renewed while running).
    single_flight_ttl: ClassVar[float] = DEFAULT_SINGLE_FLIGHT_TTL
    #: When the key is busy: "retry" (later, with backoff) or "skip" (drop this instance).
    single_flight_busy: ClassVar[str] = "retry"

    @property
    def kit(self) -> Kit:
        return kit_of(self.app)

    def apply_unique(
        self,
        args: Any = None,
        kwargs: Any = None,
        *,
        key: str | None = None,
        on_duplicate: str = "raise",
        ttl: float = DEFAULT_UNIQUE_TTL,
        policy: ReleasePolicy | str = ReleasePolicy.ON_SUCCESS,
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
        """Celery's ``apply_async``, after the delivery options and the arguments are checked
        and the middleware's ``before_apply`` (a long delay is kept in Redis until due); a
        plain task is published by the kit, the same message for a fifth of the work."""
        _check_delivery_options(options)
        # A producer's call, not Celery re-sending a retry or a worker publishing a chain step
        # (whose arguments were checked when the chain was first published).
        if "retries" not in options and "parent_id" not in options:
            self.check_arguments(args, kwargs, options)
        if not self.app.conf.task_always_eager:
            full = {
                **options,
                "task_id": task_id,
                "link": link,
                "link_error": link_error,
                "shadow": shadow,
            }
            kit = self.kit
            result = kit.pipeline.before_apply(self.app, self.name, args, kwargs, full)
            if result is not None:
                return result
            # A plain task: the kit publishes it (project.enqueue.direct), or returns None.
            plain = producer is None and link is None and link_error is None and shadow is None
            if plain and direct.ENABLED:
                result = direct.direct_publisher(kit).publish(self, args, kwargs, task_id, options)
                if result is not None:
                    return result
        return super().apply_async(
            args, kwargs, task_id, producer, link, link_error, shadow, **options
        )

    def check_arguments(self, args: Any, kwargs: Any, options: dict[str, Any]) -> None:
        """Raise ValidationError before anything is published; catalog tasks override it."""

    def single_flight_key(self, args: Any, kwargs: Any) -> str:
        """The key two running instances must not share; by default name and arguments."""
        return unique_key(self.name, "", args, kwargs)

    def retry_countdown(self) -> float:
        """Delay before the next attempt, from the app's backoff policy."""
        from project.retries.middleware import countdown_for

        return countdown_for(self.kit.settings.retries, int(self.request.retries or 0))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.request.called_directly:  # a plain function call: no broker, no retries
            return super().__call__(*args, **kwargs)
        pipeline = self.kit.pipeline
        try:
            verdict = pipeline.before_run(self)
            if verdict is not None:
                return self._obey(verdict)
            try:
                retval = self.run(*args, **kwargs)
            except _CONTROL_FLOW:
                raise
            except PermanentError:
                raise
            except Exception as exc:
                countdown = pipeline.classify(self, exc)
                if countdown is None:
                    raise
                raise self.retry(exc=exc, countdown=countdown) from exc
            pipeline.after_body(self, retval)
            return retval
        finally:
            pipeline.after_run(self)

    def _obey(self, verdict: Defer | Skip | Drop) -> Any:
        if isinstance(verdict, Drop):
            logger.info("%s[%s] not run: %s", self.name, self.request.id, verdict.reason)
            raise Ignore()
        if isinstance(verdict, Skip):
            self.update_state(state=verdict.state, meta=verdict.meta)
            raise Ignore()
        # Waiting is not a failure: it does not use up the retry budget.
        retries = int(self.request.retries or 0)
        raise self.retry(countdown=verdict.countdown, max_retries=retries + 1)

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        self.kit.pipeline.on_success(self, retval)

    def on_retry(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        self.kit.pipeline.on_retry(self, exc)

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        self.failed_for_good(exc, task_id, args, kwargs, einfo)

    def after_return(
        self, status: str, retval: Any, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if not self.request.called_directly:
            self.kit.pipeline.after_return(self, status)

    def failed_for_good(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Tell the middleware, with this task's request current (Celery may call this in the
        worker's main process, outside any request: a hard time limit, a lost worker)."""
        pushed = self.request.id != task_id
        if pushed:
            self.push_request(id=task_id, args=args, kwargs=kwargs)
        try:
            self.kit.pipeline.on_failure(self, exc, einfo)
        finally:
            if pushed:
                self.pop_request()


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
