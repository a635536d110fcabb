"""What a workflow is made of and how far it got, readable from any process.

:func:`project.workflows.canvas.run` stores a :class:`WorkflowRecord` (its kind and every step's id,
task and position) at ``kit:workflow:<id>``; the states come from Celery's result backend, read
in one ``MGET`` per thousand steps rather than a round trip per step, so a progress bar over
thousands of steps stays cheap. ``kit workflow status ID`` rebuilds the same view elsewhere.

Two states are derived here, because the backend cannot know them:

* ``SKIPPED``: a chain step after a failed one. Celery never publishes it, so the backend
  would report it ``PENDING`` forever;
* ``REVOKED`` for a step still ``PENDING`` in a cancelled workflow (it was never published, or
  no worker has seen it yet).

A step run through :func:`project.workflows.canvas.tolerant` that caught an error succeeded in
Celery's eyes (so the chain and chord go on) but counts as failed here, with its error.

A running step reads ``PENDING`` (the kit does not turn on ``task_track_started``, which would
cost a backend write per task): progress counts it as pending until it finishes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from celery import Celery, states

from project import keys

__all__ = [
    "HEADER_WORKFLOW_ID",
    "TOLERATED_ERROR",
    "Progress",
    "StepRecord",
    "StepStatus",
    "WorkflowRecord",
    "fetch_states",
]

#: Message header naming the workflow a step belongs to (also ``workflow.id`` on its spans).
HEADER_WORKFLOW_ID = "kit_workflow_id"
#: The key of a tolerant step's result that says it caught an error (see workflows.tolerant).
TOLERATED_ERROR = "kit_error"
SKIPPED = "SKIPPED"
_FINISHED_OK = frozenset({states.SUCCESS})
_FAILED = frozenset({states.FAILURE})
_NOT_RUN = frozenset({states.REVOKED, SKIPPED, "IGNORED"})
_MGET_CHUNK = 1000


@dataclass(frozen=True)
class StepRecord:
    id: str
    task: str
    path: str  # position in the canvas: "2" (third step), "1.4" (fifth member of step 1)
    role: str = "step"  # "step" or "callback" (a chord's body)


@dataclass
class WorkflowRecord:
    id: str
    kind: str  # chain | group | chord
    steps: list[StepRecord]
    created: float = field(default_factory=time.time)
    cancelled: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), default=str)

    @classmethod
    def from_json(cls, raw: str | bytes) -> WorkflowRecord:
        data = json.loads(raw)
        data["steps"] = [StepRecord(**step) for step in data["steps"]]
        return cls(**data)

    def save(self, client: Any, ttl: int) -> None:
        client.set(keys.workflow(self.id), self.to_json(), ex=max(1, ttl))

    @classmethod
    def load(cls, client: Any, workflow_id: str) -> WorkflowRecord | None:
        raw = client.get(keys.workflow(workflow_id))
        return None if raw is None else cls.from_json(raw)


@dataclass(frozen=True)
class StepStatus:
    id: str
    task: str
    path: str
    role: str
    state: str
    result: Any = None
    error: str | None = None  # "ErrorType: message" of a failed step

    @property
    def failed(self) -> bool:
        return self.state in _FAILED

    @property
    def done(self) -> bool:
        return self.state in _FINISHED_OK

    @property
    def finished(self) -> bool:
        return self.state in _FINISHED_OK | _FAILED | _NOT_RUN


@dataclass(frozen=True)
class Progress:
    """Counts over every step: done + failed + skipped (not run: revoked, skipped) + pending."""

    done: int
    failed: int
    skipped: int
    pending: int

    @property
    def total(self) -> int:
        return self.done + self.failed + self.skipped + self.pending

    @property
    def finished(self) -> bool:
        return self.pending == 0

    @classmethod
    def of(cls, steps: Iterable[StepStatus]) -> Progress:
        done = failed = skipped = pending = 0
        for step in steps:
            if step.done:
                done += 1
            elif step.failed:
                failed += 1
            elif step.finished:
                skipped += 1
            else:
                pending += 1
        return cls(done, failed, skipped, pending)


def _error_text(result: Any) -> str:
    if isinstance(result, BaseException):
        return f"{type(result).__name__}: {result}"
    return str(result)


def _status(step: StepRecord, meta: dict[str, Any] | None) -> StepStatus:
    state = str((meta or {}).get("status") or states.PENDING)
    result = (meta or {}).get("result")
    if state == states.SUCCESS and isinstance(result, dict) and TOLERATED_ERROR in result:
        caught = result[TOLERATED_ERROR]
        return StepStatus(
            step.id,
            step.task,
            step.path,
            step.role,
            states.FAILURE,
            result,
            f"{caught.get('type')}: {caught.get('message')}",
        )
    if state in _FAILED or state == states.RETRY:
        return StepStatus(
            step.id, step.task, step.path, step.role, state, None, _error_text(result)
        )
    return StepStatus(
        step.id, step.task, step.path, step.role, state, result if state == states.SUCCESS else None
    )


def fetch_states(app: Celery, steps: Sequence[StepRecord]) -> list[StepStatus]:
    """Every step's stored state, in ``steps`` order (MGET on the Redis backend)."""
    backend = app.backend
    metas: list[dict[str, Any] | None] = []
    if hasattr(backend, "client") and hasattr(backend, "get_key_for_task"):
        for start in range(0, len(steps), _MGET_CHUNK):
            chunk = steps[start : start + _MGET_CHUNK]
            raws = backend.client.mget([backend.get_key_for_task(s.id) for s in chunk])
            metas.extend(None if raw is None else backend.decode_result(raw) for raw in raws)
    else:  # any other backend: one query per step
        for step in steps:
            result = app.AsyncResult(step.id)
            metas.append({"status": result.state, "result": result.result})
    return [_status(step, meta) for step, meta in zip(steps, metas, strict=True)]


def derive(record: WorkflowRecord, statuses: list[StepStatus]) -> list[StepStatus]:
    """Add what the backend cannot know: skipped chain steps, revoked never-published ones.

    Celery marks the steps after a chain's failed one ``FAILURE`` with the same error (or
    leaves them ``PENDING``): they are reported ``SKIPPED``, so the failure is counted once.
    """
    failed_at: int | None = None
    if record.kind == "chain":
        failed_at = next((_top(s) for s in statuses if s.failed), None)
    out: list[StepStatus] = []
    for status in statuses:
        if failed_at is not None and _top(status) > failed_at and not status.done:
            status = _with_state(status, SKIPPED)
        elif status.state == states.PENDING and record.cancelled:
            status = _with_state(status, states.REVOKED)
        out.append(status)
    return out


def _top(status: StepStatus) -> int:
    return int(status.path.split(".")[0])


def _with_state(status: StepStatus, state: str) -> StepStatus:
    return StepStatus(status.id, status.task, status.path, status.role, state)
