"""Argument checks by task name, for producers that publish a task they never import.

``app.send_task("image:resize", kwargs=...)`` in a web process that has not imported the
catalog (and so has neither its tasks nor Pillow) is still refused a bad payload before
anything is published: a catalog (or a user's package) declares Pillow-free checks under the
``celery_kit.checks`` entry point, a mapping of task name to ``check(args, kwargs)`` that raises
:class:`~project.errors.ValidationError`. A task this process has imported is checked by its
own ``check_arguments`` instead. A name with no check is validated by the worker, which
archives a refused payload with the reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from celery import Celery

__all__ = ["CHECKS_GROUP", "check_by_name"]

CHECKS_GROUP = "celery_kit.checks"

Check = Callable[[Sequence[Any], Mapping[str, Any]], None]
_lock = threading.Lock()
_checks: dict[str, Check] | None = None


def _registered() -> dict[str, Check]:
    global _checks
    with _lock:
        if _checks is None:
            from importlib.metadata import entry_points

            found: dict[str, Check] = {}
            for entry in entry_points(group=CHECKS_GROUP):
                found.update(entry.load())
            _checks = found
        return _checks


def check_by_name(app: Celery, name: str, args: Any, kwargs: Any, options: dict[str, Any]) -> None:
    """Raise ValidationError for a payload task ``name`` would refuse."""
    task = app.tasks.get(name)
    if task is not None:
        check_arguments = getattr(task, "check_arguments", None)
        if check_arguments is not None:
            check_arguments(args, kwargs, options)
        return
    check = _registered().get(name)
    if check is not None:
        check(tuple(args or ()), dict(kwargs or {}))
