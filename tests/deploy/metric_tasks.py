"""Tasks for the runs that read a real worker's metrics: each one makes the worker count
something the alerts or the dashboard query (an enqueue, a success, a retry, a failure)."""

from __future__ import annotations

from typing import Any

from project import PermanentError, TransientError, app


@app.task(name="tests.deploy.succeed")
def succeed() -> str:
    return "done"


@app.task(name="tests.deploy.enqueue_add")
def enqueue_add() -> str:
    """Enqueues from inside the worker, so the worker's own metrics count an enqueue."""
    return str(succeed.delay().id)


@app.task(name="tests.deploy.retry_once", bind=True)
def retry_once(self: Any) -> int:
    if self.request.retries == 0:
        raise TransientError("the first attempt fails, the retry succeeds")
    return int(self.request.retries)


@app.task(name="tests.deploy.fail_for_good")
def fail_for_good() -> None:
    raise PermanentError("this task always fails")
