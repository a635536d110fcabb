"""Tasks the console tests run (the workers import them through ``KIT_IMPORTS``)."""

from __future__ import annotations

import time

from project import PermanentError, app
from project.lifecycle.kit import default_kit


@app.task(name="tests.console.gate")
def gate(key: str) -> str:
    """Fails for good (archived at once) until ``test:gate:<key>`` is set, then succeeds: a
    task an operator requeues once the cause is fixed."""
    if not default_kit().redis.get(f"test:gate:{key}"):
        raise PermanentError(f"gate {key} is closed")
    return f"gate {key} passed"


@app.task(name="tests.console.hold_until")
def hold_until(key: str, timeout: float = 60.0) -> bool:
    """Runs until ``test:release:<key>`` is set (or ``timeout`` passes): a task that is
    running for exactly as long as a test needs to look at it."""
    client = default_kit().redis
    client.set(f"test:running:{key}", "1")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get(f"test:release:{key}"):
            return True
        time.sleep(0.05)
    return False
