"""De-duplication: unique enqueue, caller-chosen task ids, and single-flight execution.

Asynq's ``Unique(ttl)`` and ``TaskID(id)``, for Celery, with locks that cannot leak or be freed
by the wrong task (see :mod:`project.coordination.locks`):

* :func:`enqueue_unique` takes ``kit:unique:<key>`` with one ``SET NX PX`` and publishes only if
  it got it; the lock names the task that holds it, and the worker releases it by policy
  (:class:`ReleasePolicy`) when that task finishes. The TTL bounds a lock whose task vanished.
  :func:`take_unique_locks` is that acquisition for any number of tasks at once, in one pipelined
  batch: :func:`enqueue_unique`, the bulk publish (:mod:`project.enqueue.bulk`) and workflows
  (:mod:`project.workflows.canvas`) all take their locks through it.
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from celery.canvas import Signature
from celery.result import AsyncResult
from opentelemetry import metrics, trace

from project import keys
from project.broker.connections import as_text
from project.coordination.locks import RedisLock
from project.errors import DuplicateTaskError, TaskIdConflictError
from project.lifecycle.kit import kit_of
from project.lifecycle.middleware import Defer, Middleware, Skip

__all__ = [
    "DEFAULT_TASK_ID_TTL",
    "DEFAULT_UNIQUE_TTL",
    "SKIPPED",
    "UNIQUE_OPTION",
    "Claim",
    "Duplicate",
    "LockRelease",
    "ReleasePolicy",
    "SingleFlight",
    "SingleFlightRun",
    "UniqueLocks",
    "enqueue_unique",
    "enqueue_with_id",
    "note_duplicate",
    "release_finished",
    "take_unique_locks",
    "unique_claim",
    "unique_headers",
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
#: The signature option ``project.workflows.canvas.step(unique=...)`` sets, ``[key, ttl]``; it is
#: popped by :func:`unique_claim` when the lock is taken, so it never reaches the message.
UNIQUE_OPTION = "kit_unique"

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


@dataclass(frozen=True)
class Claim:
    """A unique lock a task is about to take: ``kit:unique:<key>`` naming ``task_id``."""

    key: str  # without the kit:unique: prefix
    task_id: str
    ttl: float  # seconds


@dataclass(frozen=True)
class Duplicate:
    """A claim refused because its key is held."""

    index: int  # position in the claims given to take_unique_locks
    key: str
    holder: str  # the id of the task that holds the key ("unknown" if it just expired)


@dataclass
class UniqueLocks:
    """What :func:`take_unique_locks` got: the locks it holds, and the claims it was refused."""

    held: list[RedisLock] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)

    def release(self) -> None:
        """Free every lock taken: nothing was published, so the work is not in flight."""
        for lock in self.held:
            lock.release()


def take_unique_locks(client: Any, claims: Sequence[Claim | None]) -> UniqueLocks:
    """Take every claim's lock in one pipelined ``SET NX PX`` batch (None: that task wants
    none), then read the holders of the refused ones in one more.

    Two claims of one key in the same call are duplicates too: the first takes the lock, the
    later ones are refused with the first one's task as the holder. Whoever publishes nothing
    for the held locks (a failed publish, an all-or-nothing refusal) calls :meth:`release`.
    """
    wanted = [
        (i, RedisLock(client, keys.unique(claim.key), claim.task_id, claim.ttl))
        for i, claim in enumerate(claims)
        if claim is not None
    ]
    if not wanted:
        return UniqueLocks()
    with client.pipeline(transaction=False) as pipe:
        for _, lock in wanted:
            pipe.set(lock.key, lock.token, nx=True, px=lock.ttl_ms)
        taken = pipe.execute()
    outcome = UniqueLocks(held=[lock for (_, lock), ok in zip(wanted, taken, strict=True) if ok])
    refused = [(i, lock) for (i, lock), ok in zip(wanted, taken, strict=True) if not ok]
    if refused:
        with client.pipeline(transaction=False) as pipe:
            for _, lock in refused:
                pipe.get(lock.key)
            holders = pipe.execute()
        outcome.duplicates = [
            Duplicate(i, lock.key.removeprefix(keys.unique), _holder(holder))
            for (i, lock), holder in zip(refused, holders, strict=True)
        ]
    return outcome


def _holder(value: Any) -> str:
    return "unknown" if value is None else as_text(value)


def unique_claim(signature: Signature) -> Claim | None:
    """The claim a signature made with ``step(unique=...)`` carries (popped from its options),
    under the id it will run with (so the signature must be frozen), or None."""
    option = signature.options.pop(UNIQUE_OPTION, None)
    if option is None:
        return None
    return Claim(str(option[0]), str(signature.id), float(option[1]))


def unique_headers(key: str, policy: ReleasePolicy) -> dict[str, str]:
    """The message headers that tell the worker which unique lock to free, and when."""
    return {HEADER_UNIQUE_KEY: key, HEADER_UNIQUE_POLICY: policy.value}


def note_duplicate(
    span: trace.Span, task_name: str, holder: str, extra: dict[str, Any] | None = None
) -> None:
    """A refused duplicate is the lock doing its job, not an error: an event on the producer's
    span (``extra``: more attributes for it) and one count in ``kit.tasks.duplicates``."""
    span.add_event("task.duplicate", {"task.holder_id": holder, **(extra or {})})
    _duplicates.add(1, {"task.name": task_name})


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
    # A refused duplicate is not an error: no exception recorded, the span's status stays.
    with _tracer.start_as_current_span(
        f"enqueue_unique/{signature.task}",
        kind=trace.SpanKind.PRODUCER,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        span.set_attributes({"task.name": signature.task, "task.id": task_id})
        locks = take_unique_locks(_client(signature.app), [Claim(lock_key, task_id, ttl)])
        if locks.duplicates:
            holder = locks.duplicates[0].holder
            note_duplicate(span, signature.task, holder)
            if on_duplicate == "return":
                return AsyncResult(holder, app=signature.app)
            raise DuplicateTaskError(lock_key, holder)
        try:
            return signature.apply_async(task_id=task_id, headers=unique_headers(lock_key, policy))
        except BaseException:
            locks.release()
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
