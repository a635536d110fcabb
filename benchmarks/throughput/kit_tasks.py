"""The benchmark's tasks on the kit's app, loaded by the worker through ``KIT_IMPORTS``.

``celery -A project worker`` imports this module before it reads its settings, which makes it
the one place a scenario can revert a kit default that has no ``KIT_*`` variable, or take a
middleware out (see :mod:`benchmarks.throughput.overrides`), without touching the kit. The
overrides are applied before the tasks are defined because a task copies ``task_*`` settings
(acks_late, ignore_result ...) when it is bound. The throughput, telemetry and layout
benchmarks all run these tasks; their bodies are the same for every framework
(:mod:`benchmarks.core.bodies`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from benchmarks.core import bodies
from benchmarks.throughput.overrides import (
    DROP_ENV,
    ENV_VAR,
    apply_overrides,
    drop_middleware,
    parse,
    parse_drop,
)
from project import app

__all__ = ["TASKS"]

logger = logging.getLogger(__name__)

_overrides = parse(os.environ.get(ENV_VAR))
apply_overrides(app, _overrides)
if _overrides:
    # WARNING so it reaches the worker log at Celery's default log level: the run's record.
    logger.warning("benchmark overrides applied to the kit's app: %s", _overrides)
_dropped = parse_drop(os.environ.get(DROP_ENV))
drop_middleware(app, _dropped)
if _dropped:
    logger.warning("benchmark: middleware taken out of the kit's pipeline: %s", _dropped)

#: ``bench.noop``, ``bench.sleep`` and ``bench.stamp``, by kind.
TASKS: dict[str, Any] = {
    kind: app.task(name=f"bench.{kind}")(getattr(bodies, kind)) for kind in bodies.KINDS
}
