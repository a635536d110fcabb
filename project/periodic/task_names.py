"""Which task names a schedule entry may name: those a worker will run (``kit cron add``).

An entry for a task no worker has fires forever into messages that no one can run (a worker
archives them as unknown). So the name is checked before the entry is saved:

* when workers answer ``inspect registered`` (a broadcast, :data:`INSPECT_TIMEOUT`), the name
  must be one they registered: they are what will run it, whatever this process imports;
* when none answers (schedules set up before the workers start), the name must be defined by
  the modules a worker configured like this process would import: the catalog
  (``KIT_CATALOG``) and ``KIT_IMPORTS``, imported here as a worker does.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from kombu.exceptions import OperationalError

from project.lifecycle.kit import kit_of

__all__ = ["INSPECT_TIMEOUT", "TaskNameCheck", "check_task_name"]

INSPECT_TIMEOUT = 1.5  # seconds the workers get to answer
_SHOWN = 8  # names listed in a refusal, at most


@dataclass(frozen=True)
class TaskNameCheck:
    known: bool
    workers: int  # how many workers answered; 0: checked against the configured modules
    problem: str = ""  # one line for the operator when not known

    @property
    def source(self) -> str:
        if self.workers:
            return f"registered on {self.workers} running worker(s)"
        return "no worker answered; defined by KIT_CATALOG/KIT_IMPORTS"


def _suggestions(name: str, names: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.6)
    if close:
        return "did you mean " + ", ".join(repr(c) for c in close) + "?"
    listed = sorted(n for n in names if not n.startswith("celery."))
    more = f" (+{len(listed) - _SHOWN} more)" if len(listed) > _SHOWN else ""
    return "known: " + ", ".join(listed[:_SHOWN]) + more


def _registered(app: Celery, timeout: float) -> dict[str, list[str]]:
    """Each answering worker's registered task names; a Redis error if the broker is down."""
    kit_of(app).redis.ping()  # fails at once, where kombu's connection would retry for seconds
    try:
        return app.control.inspect(timeout=timeout).registered() or {}
    except OperationalError as exc:
        raise redis.ConnectionError(str(exc)) from exc


def check_task_name(app: Celery, name: str, timeout: float = INSPECT_TIMEOUT) -> TaskNameCheck:
    """Whether ``name`` is a task the workers will run; raises a Redis error if it is down."""
    replies = _registered(app, timeout)
    if replies:
        names = {task.split()[0] for tasks in replies.values() for task in tasks or ()}
        if name in names:
            return TaskNameCheck(True, len(replies))
        return TaskNameCheck(
            False,
            len(replies),
            f"no running worker has task {name!r} ({len(replies)} answered; "
            f"{_suggestions(name, names)}); fix the name, or add its module to the workers' "
            "KIT_IMPORTS and restart them",
        )
    app.loader.import_default_modules()
    names = set(app.tasks)
    if name in names:
        return TaskNameCheck(True, 0)
    return TaskNameCheck(
        False,
        0,
        f"task {name!r} is not defined by KIT_CATALOG or KIT_IMPORTS, and no worker answered "
        f"to say it has it ({_suggestions(name, names)}); fix the name, or add its module to "
        "KIT_IMPORTS",
    )
