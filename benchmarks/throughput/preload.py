"""Pre-loading a scenario's tasks (no-op unless told) into Redis before its worker starts.

Messages are made by a Celery app configured like the scenario's worker app (same queues,
default priority, time limits ...), because several task options travel in the message: the
kit's default priority picks the Redis list (``default\\x06\\x165``) and its time limits ride in
the ``timelimit`` header. Two things differ on purpose, neither visible to the worker:

* no result backend: Celery's Redis backend would SUBSCRIBE this process to every task's result
  channel, and the worker's result PUBLISHes would then cost Redis a delivery per task;
* no ``task-sent`` events: they go to Pub/Sub with nobody listening, and only slow the pre-load.

Publishing goes through kombu's ``Producer.batch()``, which pipelines the LPUSHes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from celery import Celery

from benchmarks.core import bodies
from benchmarks.throughput import plain_app
from benchmarks.throughput.overrides import Scalar, apply_overrides

__all__ = ["AppKind", "preload", "producer_app"]

AppKind = Literal["plain", "kit"]
TASK_NAME = "bench.noop"
BATCH_SIZE = 1000  # messages per pipeline round trip


def _noop(*args: object) -> None:
    """Never runs here: registering it lets task-level options shape the message."""


def producer_app(
    kind: AppKind, url: str, kit_env: Mapping[str, str], overrides: Mapping[str, Scalar]
) -> Celery:
    """An app that writes messages exactly as the scenario's own producers would."""
    if kind == "plain":
        return plain_app.create_app(url)
    from project import create_app, load_settings

    app = create_app(load_settings({**kit_env, "REDIS_URL": url}))
    apply_overrides(app, overrides)
    app.conf.update(result_backend=None, task_send_sent_event=False)
    # Every benchmark task, registered on the producer too: a message needs the task's options.
    for kind_name in bodies.KINDS:
        app.task(name=f"bench.{kind_name}", shared=False)(_noop)
    return app


def preload(app: Celery, count: int, task_name: str = TASK_NAME, **options: Any) -> None:
    """Publish ``count`` tasks (no arguments) through one producer, pipelined."""
    task = app.tasks[task_name]
    with app.producer_or_acquire() as producer, producer.batch(max_size=BATCH_SIZE):
        for _ in range(count):
            task.apply_async(producer=producer, **options)
