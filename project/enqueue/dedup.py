"""De-duplication: unique enqueue, caller-chosen task ids, and single-flight execution.

Asynq's ``Unique(ttl)`` and ``TaskID(id)``, for Celery, with locks that cannot leak or be freed
by the wrong task (see :mod:`project.coordination.locks`):

* :func:`enqueue_unique` takes ``kit:unique:<key>`` with one ``SET NX PX`` and publishes only if
  it got it; the lock names the task that holds it, and the worker releases it by policy
  (:class:`ReleasePolicy`) when that task finishes. The TTL bounds a lock whose task vanished.
* :func:`enqueue_with_id` reserves ``kit:taskid:<id>`` the same way until that task succeeds or
  is archived, so a caller-chosen id is never in flight twice.
* :class:`SingleFlight` (a task's ``single_flight = True``) lets one instance per key run at a
  time across all workers, renewing its lock while it runs.

The lock's name and policy travel in the message headers, so retries keep them and the worker
knows what to release without asking the producer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from enum import Enum
from typing import Any

from celery.canvas import Signature
from celery.result import AsyncResult
from opentelemetry import metrics, trace

from project import keys
from project.coordination.locks import RedisLock
from project.errors import DuplicateTaskError, TaskIdConflictError
from project.lifecycle.kit import kit_of
from project.lifecycle.middleware import Defer, Middleware, Skip

__all__ = [
    "DEFAULT_TASK_ID_TTL",
    "DEFAULT_UNIQUE_TTL",
    "SKIPPED",
    "LockRelease",
    "ReleasePolicy",
    "SingleFlight",
    "SingleFlightRun",
    "enqueue_unique",
    "enqueue_with_id",
    "release_finished",
    "unique_key",
]

logger = logging.getLogger(__name__)

DEFAULT_UNIQUE_TTL = 3600.0  # seconds: the longest a unique lock outlives a vanished task
DEFAULT_TASK_ID_TTL = 86_400.0  # seconds: the longest an id stays reserved for a lost task
DEFAULT_SINGLE_FLIGHT_TTL = 60.0  # seconds: a dead runner's lock is free after this

#: Result state of a single-flight task skipped because its key was running elsewhere.
SKIPPED = "SKIPPED"

HEADER_UNIQUE_KEY = "kit_unique_key"
HEADER_UNIQUE_POLICY = "kit_unique_policy"
HEADER_TASK_ID_LOCK = "kit_task_id_lock"

_tracer = trace.get_tracer("project.enqueue.dedup")


class ReleasePolicy(str, Enum):
    """When the worker frees a unique lock. While a task waits to retry, it is always held."""

    ON_SUCCESS = "success"  # Asynq's rule: a failed, archived task keeps it until the TTL
    ON_SUCCESS_OR_ARCHIVE = "success_or_archive"  # also freed when the task fails for good
    UNTIL_TTL = "ttl"  # never freed early: at most one run per TTL window


#: The outcomes that free a unique lock, per policy (a retry never does).
_RELEASED_ON: dict[ReleasePolicy, frozenset[str]] = {
    ReleasePolicy.ON_SUCCESS: frozenset({"success"}),
    ReleasePolicy.ON_SUCCESS_OR_ARCHIVE: frozenset({"success", "archived"}),
    ReleasePolicy.UNTIL_TTL: frozenset(),
}


# A proxy instrument: it reports to whatever meter provider the process sets up later.
_duplicates = metrics.get_meter("project.enqueue.dedup").create_counter(
    "kit.tasks.duplicates", unit="{task}", description="Enqueues refused as duplicates"
)


def unique_key(name: str, queue: str, args: Any, kwargs: Any) -> str:
    """A digest of task name, queue and a canonical JSON of the arguments (keyword order and
    whitespace do not matter)."""
    canonical = json.dumps(
        {"task": name, "queue": queue, "args": list(args or ()), "kwargs": dict(kwargs or {})},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return f"{name}:{hashlib.sha256(canonical.encode()).hexdigest()}"


def _queue_of(signature: Signature) -> str:
    explicit = signature.options.get("queue")
    if explicit:
        return str(getattr(explicit, "name", explicit))
    task = signature.app.tasks.get(signature.task)
    return str(getattr(task, "default_queue", None) or "default")


def _client(app: Any) -> Any:
    return kit_of(app).redis


def enqueue_unique(
    signature: Signature,
    key: str | None = None,
    ttl: float = DEFAULT_UNIQUE_TTL,
    policy: ReleasePolicy | str = ReleasePolicy.ON_SUCCESS,
    on_duplicate: str = "raise",
) -> AsyncResult:
    """Publish ``signature`` unless the same work holds the lock.

    ``key`` defaults to :func:`unique_key`; give your own (``"email:user:123"``) to make
    different arguments count as the same work. A duplicate raises :class:`DuplicateTaskError`
    carrying the holder's id, or, with ``on_duplicate="return"``, returns the holder's result.
    Nothing is ever published for a duplicate.
    """
    if on_duplicate not in ("raise", "return"):
        raise ValueError("on_duplicate must be 'raise' or 'return'")
    policy = ReleasePolicy(policy)
    lock_key = key or unique_key(
        signature.task, _queue_of(signature), signature.args, signature.kwargs
    )
    # The id the lock names, chosen here rather than by freezing a clone: cheaper, same effect.
    task_id = str(signature.options.get("task_id") or uuid.uuid4())
    lock = RedisLock(_client(signature.app), keys.unique(lock_key), task_id, ttl)
    # A refused duplicate is the lock doing its job, not an error: an event, not a failed span.
    with _tracer.start_as_current_span(
        f"enqueue_unique/{signature.task}",
        kind=trace.SpanKind.PRODUCER,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        span.set_attributes({"task.name": signature.task, "task.id": task_id})
        if not lock.acquire():
            holder = lock.holder() or "unknown"
            span.add_event("task.duplicate", {"task.holder_id": holder})
            _duplicates.add(1, {"task.name": signature.task})
            if on_duplicate == "return":
                return AsyncResult(holder, app=signature.app)
            raise DuplicateTaskError(lock_key, holder)
        headers = {HEADER_UNIQUE_KEY: lock_key, HEADER_UNIQUE_POLICY: policy.value}
        try:
            return signature.apply_async(task_id=task_id, headers=headers)
        except BaseException:
            lock.release()  # nothing was published: the work is not in flight
            raise


def enqueue_with_id(
    signature: Signature, task_id: str, ttl: float = DEFAULT_TASK_ID_TTL
) -> AsyncResult:
    """Publish ``signature`` under ``task_id``; :class:`TaskIdConflictError` while a task with
    that id is pending, scheduled, retrying or running. The id is free again once it finished."""
    lock = RedisLock(_client(signature.app), keys.task_id_lock(task_id), task_id, ttl)
    if not lock.acquire():
        raise TaskIdConflictError(task_id)
    try:
        # The id's previous task has finished: its stored result must not answer for this one.
        signature.app.AsyncResult(task_id).forget()
        return signature.clone().apply_async(task_id=task_id, headers={HEADER_TASK_ID_LOCK: True})
    except BaseException:
        lock.release()
        raise


def release_finished(client: Any, request: Any, task_id: str, outcome: str) -> None:
    """Free the locks a finished task holds, by its headers; ``outcome``: success|archived.

    Called by the worker, never raises: a lock that cannot be freed expires with its TTL.
    """
    try:
        if request.get(HEADER_TASK_ID_LOCK):
            RedisLock(client, keys.task_id_lock(task_id), task_id, 1).release()
        lock_key = request.get(HEADER_UNIQUE_KEY)
        if not lock_key:
            return
        policy = ReleasePolicy(request.get(HEADER_UNIQUE_POLICY) or ReleasePolicy.ON_SUCCESS)
        if outcome in _RELEASED_ON[policy]:
            RedisLock(client, keys.unique(lock_key), task_id, 1).release()
    except Exception:
        logger.warning("could not release the locks of task %s", task_id, exc_info=True)


class SingleFlight:
    """Holds ``kit:running:<key>`` while a task runs, renewing it every third of its TTL.

    If the worker dies, renewal stops and the lock expires within ``ttl`` seconds.
    """

    def __init__(
        self, client: Any, key: str, task_id: str, ttl: float = DEFAULT_SINGLE_FLIGHT_TTL
    ) -> None:
        self.lock = RedisLock(client, keys.running(key), task_id, ttl)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._interval = ttl / 3

    def acquire(self) -> bool:
        if not self.lock.acquire():
            return False
        self._renewer = threading.Thread(target=self._renew, name="single-flight", daemon=True)
        self._renewer.start()
        return True

    def holder(self) -> str | None:
        return self.lock.holder()

    def _renew(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not self.lock.renew():
                    logger.warning("single-flight lock %s was lost", self.lock.key)
                    return
            except Exception:
                logger.warning("single-flight lock %s not renewed", self.lock.key, exc_info=True)

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(5)
        try:
            self.lock.release()
        except Exception:
            logger.warning("single-flight lock %s not released", self.lock.key, exc_info=True)


class SingleFlightRun(Middleware):
    """``single_flight = True``: one running instance per key across all workers."""

    def before_run(self, task: Any) -> Defer | Skip | None:
        if not getattr(task, "single_flight", False):
            return None
        request = task.request
        flight = SingleFlight(
            _client(task.app),
            task.single_flight_key(request.args or (), request.kwargs or {}),
            str(request.id),
            task.single_flight_ttl,
        )
        if flight.acquire():
            request.kit_flight = flight  # released by after_run
            return None
        holder = flight.holder()
        if task.single_flight_busy == "skip":
            logger.info("%s[%s] skipped: %s is running it", task.name, request.id, holder)
            return Skip(SKIPPED, {"running": holder})
        return Defer(task.retry_countdown())

    def after_run(self, task: Any) -> None:
        flight = getattr(task.request, "kit_flight", None)
        if flight is not None:
            task.request.kit_flight = None
            flight.release()


class LockRelease(Middleware):
    """Frees a finished task's unique and task-id locks (:class:`ReleasePolicy`).

    On success, before Celery stores the result: a caller that sees SUCCESS and enqueues the
    same unique work again is never refused by the finished task's lock (Asynq frees it in the
    same step that marks the task done)."""

    def after_body(self, task: Any, retval: Any) -> None:
        release_finished(_client(task.app), task.request, str(task.request.id), "success")

    def on_failure(self, task: Any, exc: BaseException, einfo: Any) -> None:
        release_finished(_client(task.app), task.request, str(task.request.id), "archived")
