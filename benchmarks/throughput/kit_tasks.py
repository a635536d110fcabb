"""The benchmark's tasks on the kit's app, loaded by the worker through ``KIT_IMPORTS``.

Imported by ``celery -A project worker`` before the worker reads its settings, which makes this
module the one place a scenario can revert a kit default that has no ``KIT_*`` variable (see
:mod:`benchmarks.throughput.overrides`) without touching the kit. The overrides are applied
before the task is defined because a task copies ``task_*`` settings (acks_late,
ignore_result ...) when bound.
"""

from __future__ import annotations

import logging
import os

from benchmarks.core import bodies as _stamp
from benchmarks.throughput.overrides import ENV_VAR, apply_overrides, parse
from project import app

logger = logging.getLogger(__name__)

_overrides = parse(os.environ.get(ENV_VAR))
apply_overrides(app, _overrides)
if _overrides:
    # WARNING so it reaches the worker log at Celery's default log level: the run's record.
    logger.warning("benchmark overrides applied to the kit's app: %s", _overrides)


@app.task(name="bench.noop")
def noop() -> None:
    """Does nothing, so the measured rate is the worker's own per-task cost."""


@app.task(name="bench.sleep")
def sleep() -> None:
    """10 ms of I/O wait (``time.sleep(0.01)``): what concurrency buys."""
    _stamp.sleep()


@app.task(name="bench.stamp")
def stamp(sent: float) -> None:
    """Records how long ago ``sent`` was (:mod:`benchmarks.core.bodies`)."""
    _stamp.record(sent)


@app.task(name="bench.item")
def item(n: int) -> None:
    """Takes one argument, so the enqueue benchmark can give each task distinct arguments
    (``enqueue_unique`` would refuse the second of two identical ones)."""
