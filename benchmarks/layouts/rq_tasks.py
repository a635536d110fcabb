"""The benchmark's job functions for ``rq worker`` (the other reference), by dotted path."""

from __future__ import annotations

from benchmarks.core import bodies as _stamp

__all__ = ["FUNCTIONS", "noop", "sleep", "stamp"]

#: Task kind -> the dotted path RQ imports in the worker.
FUNCTIONS = {kind: f"{__name__}.{kind}" for kind in ("noop", "sleep", "stamp")}


def noop() -> None:
    """Does nothing, so the measured rate is the worker's own per-job cost."""


def sleep() -> None:
    _stamp.sleep()


def stamp(sent: float) -> None:
    _stamp.record(sent)
