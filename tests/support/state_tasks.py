"""Tasks of the state model's tests (``tests/project/test_states.py``, ``test_cli_tasks.py``):
a blocker that holds a worker's process until the test releases it, so a test acts while the
worker is busy however slow the machine is, instead of racing a fixed sleep."""

from __future__ import annotations

import time

from project import app
from project.lifecycle.kit import default_kit

__all__ = ["IMPORTS", "blocker", "release"]

#: ``KIT_IMPORTS`` of a worker that runs these tasks as well as the suite's own.
IMPORTS = "tests.support.tasks,tests.support.state_tasks"


@app.task(name="tests.states.blocker")
def blocker(key: str, most: float = 120.0) -> str:
    """Records its start in ``test:starts:<key>``, then waits until :func:`release` (or
    ``most`` seconds)."""
    client = default_kit().redis
    client.rpush(f"test:starts:{key}", repr(time.time()))
    deadline = time.monotonic() + most
    while time.monotonic() < deadline:
        if client.blpop([f"test:release:{key}"], timeout=1):
            return "released"
    return "gave up"


def release(key: str) -> None:
    default_kit().redis.rpush(f"test:release:{key}", 1)
