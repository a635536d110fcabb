"""Tasks the console tests run (the workers import them through ``KIT_IMPORTS``)."""

from __future__ import annotations

from project import PermanentError, app
from project.lifecycle.kit import default_kit


@app.task(name="tests.console.gate")
def gate(key: str) -> str:
    """Fails for good (archived at once) until ``test:gate:<key>`` is set, then succeeds: a
    task an operator requeues once the cause is fixed."""
    if not default_kit().redis.get(f"test:gate:{key}"):
        raise PermanentError(f"gate {key} is closed")
    return f"gate {key} passed"
