"""Chains, groups and chords on Celery's canvas, with a handle to watch and cancel them.

No engine of our own: :func:`chain`, :func:`group` and :func:`chord` return Celery canvas
objects, and :func:`run` publishes them with ``apply_async``. What the kit adds:

* :func:`step` builds a signature from a task name with per-step options (queue, priority,
  countdown, unique key); a unique step's lock is taken when the workflow starts, under the
  id the step will run with, so even a chain step the worker publishes later is de-duplicated;
* :func:`run` freezes the canvas (every step's id is known before anything is published),
  stores the ids at ``kit:workflow:<id>`` and returns a :class:`WorkflowHandle` with per-step
  states, progress counts, ``wait`` and ``cancel``; :func:`load` rebuilds the handle elsewhere;
* one trace: the publish happens in a ``workflow/<kind>`` span and every step carries the
  ``kit_workflow_id`` header, which the telemetry hooks copy to each span as ``workflow.id``.

Failure semantics (Celery's, reported rather than hidden):

* chain: a failed step stops the chain; the later steps are reported ``SKIPPED``;
* group: every member runs; failures are counted next to successes (47 done / 3 failed);
* chord: the callback runs once with every header result, in header order. If any header
  task fails, Celery does *not* run the callback: it fails with ``ChordError`` naming the
  failed task. To get a callback whatever happens, wrap the header steps in :func:`tolerant`:
  a tolerant step turns an error into a result (``{"kit_error": {...}}``) that the callback
  receives and the handle still counts as failed (see :mod:`tasks.images.batch`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, TypeAlias

from celery import Celery
from celery.canvas import Signature, _chain, _chord, maybe_signature
from celery.canvas import chain as celery_chain
from celery.canvas import chord as celery_chord
from celery.canvas import group as celery_group
from opentelemetry import trace

from project import keys
from project.enqueue.dedup import (
    DEFAULT_UNIQUE_TTL,
    UNIQUE_OPTION,
    ReleasePolicy,
    UniqueLocks,
    take_unique_locks,
    unique_claim,
    unique_headers,
)
from project.errors import DuplicateTaskError
from project.lifecycle.kit import default_kit, kit_of
from project.workflows.state import (
    HEADER_WORKFLOW_ID,
    Progress,
    StepRecord,
    StepStatus,
    WorkflowRecord,
    derive,
    fetch_states,
)

__all__ = [
    "HEADER_WORKFLOW_ID",
    "TOLERANT_TASK",
    "WorkflowHandle",
    "chain",
    "chord",
    "group",
    "load",
    "run",
    "step",
    "tolerant",
]

#: The task that runs a wrapped step and turns its error into a result (tasks.images.batch).
TOLERANT_TASK = "workflow:tolerant"
_tracer = trace.get_tracer("project.workflows.canvas")

StepLike: TypeAlias = "Signature | str"  # a task name or a signature


def _app() -> Celery:
    return default_kit().app


def step(
    task: StepLike,
    *args: Any,
    queue: str | None = None,
    priority: int | None = None,
    countdown: float | None = None,
    unique: str | None = None,
    unique_ttl: float = DEFAULT_UNIQUE_TTL,
    immutable: bool = False,
    **kwargs: Any,
) -> Signature:
    """A signature of ``task`` (a name or a signature) with the kit's per-step options.

    ``immutable=True`` ignores the previous step's result (Celery's ``.si``); ``unique`` is a
    de-duplication key (:mod:`project.enqueue.dedup`): the workflow refuses to start while it is
    held.
    """
    if isinstance(task, Signature):
        signature = task.clone(args, kwargs)
    else:
        signature = _app().signature(task, args=args, kwargs=kwargs)
    options: dict[str, Any] = {
        name: value
        for name, value in (("queue", queue), ("priority", priority), ("countdown", countdown))
        if value is not None
    }
    if unique is not None:
        options[UNIQUE_OPTION] = [unique, unique_ttl]  # kept until run() takes the lock
    signature.set(immutable=immutable or signature.immutable, **options)
    return signature


def _signature(item: StepLike) -> Signature:
    return item if isinstance(item, Signature) else step(item)


def chain(*steps: StepLike) -> Signature:
    """Each step gets the previous step's result as its first argument (unless immutable)."""
    return celery_chain(*[_signature(s) for s in steps], app=_app())


def group(*steps: StepLike) -> Signature:
    """All steps at once; the group's result is the list of their results."""
    return celery_group([_signature(s) for s in steps], app=_app())


def chord(header: Sequence[StepLike], callback: StepLike) -> Signature:
    """``callback`` gets the list of header results once all of them finished (see module
    docstring for a failed header task)."""
    return celery_chord([_signature(s) for s in header], _signature(callback), app=_app())


def tolerant(task: StepLike) -> Signature:
    """``task`` run by :data:`TOLERANT_TASK`: its error becomes a result, so the chain goes on
    (later tolerant steps pass the error along without running) and a chord's callback runs."""
    inner = _signature(task)
    wrapper = _app().signature(
        TOLERANT_TASK,
        args=(),
        kwargs={
            "step": {"task": inner.task, "args": list(inner.args), "kwargs": dict(inner.kwargs)}
        },
    )
    options = {k: v for k, v in inner.options.items() if k != "task_id"}
    queue = getattr(_app().tasks.get(inner.task), "default_queue", None)
    if queue and "queue" not in options:
        options["queue"] = queue  # the wrapped task's queue, not the wrapper's
    wrapper.set(immutable=inner.immutable, **options)
    return wrapper


def _kind(canvas: Signature) -> str:
    if isinstance(canvas, _chord):
        return "chord"
    if isinstance(canvas, _chain):
        return "chain"
    if isinstance(canvas, celery_group):
        return "group"
    return "task"


def _leaves(
    canvas: Signature, path: str, role: str = "step"
) -> Iterator[tuple[Signature, str, str]]:
    """Every task signature in the canvas with its position (after freeze: with its id)."""
    if isinstance(canvas, _chord):
        header = canvas.tasks
        members = list(header.tasks if isinstance(header, celery_group) else header)
        for index, member in enumerate(members):
            yield from _leaves(maybe_signature(member), _join(path, index))
        yield from _leaves(maybe_signature(canvas.body), _join(path, len(members)), "callback")
    elif isinstance(canvas, _chain | celery_group):
        for index, member in enumerate(canvas.tasks):
            yield from _leaves(maybe_signature(member), _join(path, index), role)
    else:
        yield canvas, path or "0", role


def _join(path: str, index: int) -> str:
    return f"{path}.{index}" if path else str(index)


def _take_unique_locks(leaves: list[Signature], client: Any) -> UniqueLocks:
    """Every unique step's lock, in one pipelined batch; all or none (a duplicate releases the
    rest and raises :class:`DuplicateTaskError`)."""
    claims = [unique_claim(leaf) for leaf in leaves]
    for leaf, claim in zip(leaves, claims, strict=True):
        if claim is not None:
            leaf.options["headers"] = {
                **(leaf.options.get("headers") or {}),
                **unique_headers(claim.key, ReleasePolicy.ON_SUCCESS),
            }
    locks = take_unique_locks(client, claims)
    if locks.duplicates:
        locks.release()
        first = locks.duplicates[0]
        raise DuplicateTaskError(first.key, first.holder)
    return locks


def run(canvas: Signature, *, meta: dict[str, Any] | None = None) -> WorkflowHandle:
    """Publish ``canvas`` as one workflow; the handle knows every step's id before it runs."""
    app = _app()
    workflow_id = str(uuid.uuid4())
    canvas = canvas.clone()
    canvas.freeze()
    found = list(_leaves(canvas, ""))
    for leaf, _, _ in found:
        leaf.options["headers"] = {
            **(leaf.options.get("headers") or {}),
            HEADER_WORKFLOW_ID: workflow_id,
        }
    record = WorkflowRecord(
        id=workflow_id,
        kind=_kind(canvas),
        steps=[StepRecord(str(leaf.id), str(leaf.task), path, role) for leaf, path, role in found],
        meta=dict(meta or {}),
    )
    kit = kit_of(app)
    client = kit.redis
    with _tracer.start_as_current_span(f"workflow/{record.kind}") as span:
        span.set_attributes(
            {
                "workflow.id": workflow_id,
                "workflow.kind": record.kind,
                "workflow.steps": len(record.steps),
            }
        )
        locks = _take_unique_locks([leaf for leaf, _, _ in found], client)
        record.save(client, kit.settings.broker.result_expires)
        try:
            canvas.apply_async()
        except BaseException:
            locks.release()
            client.delete(keys.workflow(workflow_id))
            raise
    return WorkflowHandle(app, record)


def load(workflow_id: str, app: Celery | None = None) -> WorkflowHandle | None:
    """The handle of a workflow started anywhere, or None if unknown (or expired)."""
    app = app or _app()
    record = WorkflowRecord.load(kit_of(app).redis, workflow_id)
    return None if record is None else WorkflowHandle(app, record)


class WorkflowHandle:
    """A started workflow: its id, its steps' ids and states, progress, wait and cancel."""

    def __init__(self, app: Celery, record: WorkflowRecord) -> None:
        self.app = app
        self.record = record

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def step_ids(self) -> list[str]:
        return [s.id for s in self.record.steps]

    def steps(self) -> list[StepStatus]:
        """Every step's state now, in canvas order (a chord's callback last)."""
        return derive(self.record, fetch_states(self.app, self.record.steps))

    def progress(self) -> Progress:
        return Progress.of(self.steps())

    def failures(self) -> list[StepStatus]:
        """The failed steps, each with its error (``"ErrorType: message"``)."""
        return [s for s in self.steps() if s.failed]

    def callback(self) -> StepStatus | None:
        """A chord's callback step, or None for other kinds."""
        found = [s for s in self.steps() if s.role == "callback"]
        return found[-1] if found else None

    def results(self) -> list[Any]:
        """The results of the top-level steps that succeeded, in order."""
        return [s.result for s in self.steps() if s.done]

    def wait(self, timeout: float | None = None, interval: float = 0.2) -> Progress:
        """Block until no step is pending; :class:`TimeoutError` at the deadline."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            progress = self.progress()
            if progress.finished:
                return progress
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"workflow {self.id} not finished within {timeout}s: {progress}")
            time.sleep(interval)

    def cancel(self) -> list[str]:
        """Revoke every step not finished yet; running steps finish, later ones never run.

        Returns the revoked ids. Workers keep revocations in memory (Celery's rule): a step
        published after every live worker restarted would still run.
        """
        pending = [s.id for s in self.steps() if not s.finished]
        self.record.cancelled = True
        kit = kit_of(self.app)
        self.record.save(kit.redis, kit.settings.broker.result_expires)
        if pending:
            self.app.control.revoke(pending)
        return pending
