"""The one way the kit hooks into a task's life: :class:`Middleware` classes in a :class:`Pipeline`.

Each per-task concern (retries and the archive, locks, single flight, counters, durable delay,
leases, pause, telemetry ...) is one subclass that overrides the hooks it needs. The pipeline
calls every middleware's hook in list order (``create_app`` shows the list) and never lets one
raise: a failing hook is logged and the task goes on. Hooks that steer the task *return* what
they want (a :class:`Defer`, :class:`Skip` or :class:`Drop` from ``before_run``, a retry
countdown from ``classify``); :class:`~project.lifecycle.task.KitTask` turns that into Celery's
control flow.

Celery's own mechanisms stay underneath: the task class calls the run hooks, the app's
:class:`~project.lifecycle.publish.KitAMQP` and one ``before_task_publish`` receiver call
``before_publish``, a consumer bootstep calls the worker hooks, and process-wide signals
(``worker_init``, ``worker_process_init`` ...) reach the pipeline of the kit's app only.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Task

__all__ = ["Defer", "Drop", "Middleware", "Pipeline", "Publish", "Skip"]

logger = logging.getLogger(__name__)


@dataclass
class Publish:
    """A message about to be published; ``headers`` and ``properties`` may be changed."""

    task_name: str
    headers: dict[str, Any]
    properties: dict[str, Any]
    routing_key: str | None


@dataclass(frozen=True)
class Defer:
    """Run this message later, without using up its retry budget (a busy single-flight key)."""

    countdown: float


@dataclass(frozen=True)
class Drop:
    """Run nothing and store nothing: this message is a stale copy of work that goes on
    elsewhere (a redelivered attempt whose retry was published already). It is acknowledged
    as it is, and the task's state, locks and counters stay as its successor left them."""

    reason: str


@dataclass(frozen=True)
class Skip:
    """Do not run this instance: finish it in ``state`` (a terminal state of its own)."""

    state: str
    meta: dict[str, Any] = field(default_factory=dict)


class Middleware:
    """One concern's hooks, in the order of a task's life. Every hook is a no-op here.

    ``task`` is the running :class:`~project.lifecycle.task.KitTask` (its ``request`` is the
    current message); ``consumer`` is Celery's worker consumer; ``worker`` its WorkController.
    """

    # -- producer --------------------------------------------------------------------------

    def before_apply(
        self, app: Any, name: str, args: Any, kwargs: Any, options: dict[str, Any]
    ) -> Any | None:
        """Before ``apply_async`` or ``send_task`` publishes task ``name`` (every publish path
        goes through one of them): return an AsyncResult to publish nothing now."""
        return None

    def before_publish(self, message: Publish) -> None:
        """Inside Celery's publish, with the producer span current (headers still mutable)."""

    # -- worker process life ---------------------------------------------------------------

    def worker_init(self, worker: Any) -> None:
        """The worker's main process, before it connects (fail fast on bad configuration)."""

    def process_init(self) -> None:
        """A process that runs tasks: each prefork child after fork, or the main process."""

    def process_shutdown(self) -> None:
        """That process is about to exit."""

    def beat_init(self, beat: Any) -> None:
        """Beat is starting."""

    # -- consumer (main process; again after each reconnect) -------------------------------

    def worker_start(self, consumer: Any) -> None:
        """The consumer is about to fetch: its channel and timer are ready."""

    def worker_stop(self, consumer: Any) -> None:
        """The consumer stops fetching (connection lost, or shutting down)."""

    def worker_shutdown(self, consumer: Any) -> None:
        """The worker is shutting down for good."""

    # -- one task attempt (the process that runs it) ---------------------------------------

    def before_run(self, task: Task) -> Defer | Skip | Drop | None:
        """Before the task body; the first Defer, Skip or Drop wins and the body does not run."""
        return None

    def classify(self, task: Task, exc: Exception) -> float | None:
        """The body raised ``exc``: a countdown to retry it after, or None (fail now)."""
        return None

    def after_body(self, task: Task, retval: Any) -> None:
        """The body returned ``retval``; Celery stores the result next. What must be done by
        the time a caller can see SUCCESS (free the task's unique lock) is done here."""

    def after_run(self, task: Task) -> None:
        """After the body (or instead of it), whatever happened; release what before_run took."""

    def on_success(self, task: Task, retval: Any) -> None:
        """The attempt succeeded (its result is stored; the message is acknowledged next)."""

    def on_retry(self, task: Task, exc: BaseException) -> None:
        """The attempt failed and another one is published."""

    def on_failure(self, task: Task, exc: BaseException, einfo: Any) -> None:
        """The task failed for good (an error not retried, retries exhausted, hard time
        limit, or its pool process dying too often); its message is acknowledged next."""

    def after_return(self, task: Task, state: str) -> None:
        """Last, after the outcome hooks, whatever the outcome (``state``: Celery's)."""


_HOOKS = (
    "before_apply",
    "before_publish",
    "worker_init",
    "process_init",
    "process_shutdown",
    "beat_init",
    "worker_start",
    "worker_stop",
    "worker_shutdown",
    "before_run",
    "classify",
    "after_body",
    "after_run",
    "on_success",
    "on_retry",
    "on_failure",
    "after_return",
)


class Pipeline:
    """The ordered middleware of one app; calls each hook of each middleware, never raising.

    With ``timed=True`` it also keeps each hook's total time (``timings``), which is how the
    per-hook cost in the README was measured (``python -m benchmarks hooks``).
    """

    def __init__(self, middleware: Iterable[Middleware], *, timed: bool = False) -> None:
        self.middleware: tuple[Middleware, ...] = tuple(middleware)
        self.timed = timed
        #: (middleware class name, hook) -> [calls, seconds]
        self.timings: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
        # Only the middleware that override a hook are called for it: a no-op costs nothing.
        self._by_hook: dict[str, tuple[Middleware, ...]] = {
            hook: tuple(m for m in self.middleware if _overrides(m, hook)) for hook in _HOOKS
        }

    def __iter__(self) -> Iterator[Middleware]:
        return iter(self.middleware)

    def get(self, kind: type[Any]) -> Any | None:
        """The middleware of class ``kind`` in this pipeline, if any."""
        return next((m for m in self.middleware if isinstance(m, kind)), None)

    def _call(self, hook: str, *args: Any) -> Iterator[Any]:
        for middleware in self._by_hook[hook]:
            started = time.perf_counter() if self.timed else 0.0
            try:
                yield getattr(middleware, hook)(*args)
            except Exception:
                _failed(middleware, hook)
            finally:
                if self.timed:
                    entry = self.timings[(type(middleware).__name__, hook)]
                    entry[0] += 1
                    entry[1] += time.perf_counter() - started

    def _each(self, hook: str, *args: Any) -> None:
        if self.timed:
            for _ in self._call(hook, *args):
                pass
            return
        for middleware in self._by_hook[hook]:  # _call's loop, without a generator per call
            try:
                getattr(middleware, hook)(*args)
            except Exception:
                _failed(middleware, hook)

    def _first(self, hook: str, *args: Any) -> Any | None:
        if self.timed:
            for answer in self._call(hook, *args):
                if answer is not None:
                    return answer
            return None
        for middleware in self._by_hook[hook]:
            try:
                answer = getattr(middleware, hook)(*args)
            except Exception:
                _failed(middleware, hook)
                continue
            if answer is not None:
                return answer
        return None

    def before_apply(
        self, app: Any, name: str, args: Any, kwargs: Any, options: dict[str, Any]
    ) -> Any:
        return self._first("before_apply", app, name, args, kwargs, options)

    def before_publish(self, message: Publish) -> None:
        self._each("before_publish", message)

    def worker_init(self, worker: Any) -> None:
        self._each("worker_init", worker)

    def process_init(self) -> None:
        self._each("process_init")

    def process_shutdown(self) -> None:
        self._each("process_shutdown")

    def beat_init(self, beat: Any) -> None:
        self._each("beat_init", beat)

    def worker_start(self, consumer: Any) -> None:
        self._each("worker_start", consumer)

    def worker_stop(self, consumer: Any) -> None:
        self._each("worker_stop", consumer)

    def worker_shutdown(self, consumer: Any) -> None:
        self._each("worker_shutdown", consumer)

    def before_run(self, task: Task) -> Defer | Skip | Drop | None:
        verdict: Defer | Skip | Drop | None = self._first("before_run", task)
        return verdict

    def classify(self, task: Task, exc: Exception) -> float | None:
        countdown: float | None = self._first("classify", task, exc)
        return countdown

    def after_body(self, task: Task, retval: Any) -> None:
        self._each("after_body", task, retval)

    def after_run(self, task: Task) -> None:
        self._each("after_run", task)

    def on_success(self, task: Task, retval: Any) -> None:
        self._each("on_success", task, retval)

    def on_retry(self, task: Task, exc: BaseException) -> None:
        self._each("on_retry", task, exc)

    def on_failure(self, task: Task, exc: BaseException, einfo: Any) -> None:
        self._each("on_failure", task, exc, einfo)

    def after_return(self, task: Task, state: str) -> None:
        self._each("after_return", task, state)


def _overrides(middleware: Middleware, hook: str) -> bool:
    return getattr(type(middleware), hook) is not getattr(Middleware, hook)


def _failed(middleware: Middleware, hook: str) -> None:
    """A hook raised (called from its ``except``): logged with its traceback, never raised."""
    logger.warning("%s.%s failed; the task goes on", type(middleware).__name__, hook, exc_info=True)
