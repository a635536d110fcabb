"""A task for the metric-name run: it enqueues another, so the worker counts an enqueue."""

from __future__ import annotations

from project import app
from tests.support.tasks import add


@app.task(name="tests.deploy.enqueue_add")
def enqueue_add() -> str:
    return str(add.delay(1, 2).id)
