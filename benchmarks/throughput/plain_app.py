"""The baseline: Celery as it comes, for ``celery -A benchmarks.throughput.plain_app worker``.

Only the broker URL and the (already default) JSON serializer are set, so the numbers show what
stock Celery does on the same Redis: prefetch 4, early ack, no result backend, events off, one
queue named ``celery``. The URL comes from :data:`BROKER_URL_ENV`; when it is unset the app keeps
Celery's own default broker (AMQP on localhost), so a stray worker never lands on a real Redis.
"""

from __future__ import annotations

import os

from celery import Celery

from benchmarks.core import bodies as stamp

__all__ = ["BROKER_URL_ENV", "app", "create_app"]

BROKER_URL_ENV = "BENCH_BROKER_URL"


def _noop() -> None:
    """Does nothing, so the measured rate is the worker's own per-task cost."""


def create_app(broker_url: str | None) -> Celery:
    """A plain app; the benchmark's producer builds its own with the private Redis URL."""
    plain = Celery("plain", broker=broker_url)
    plain.conf.task_serializer = "json"
    plain.task(name="bench.noop", shared=False)(_noop)
    plain.task(name="bench.sleep", shared=False)(stamp.sleep)
    plain.task(name="bench.stamp", shared=False)(stamp.record)
    return plain


app = create_app(os.environ.get(BROKER_URL_ENV))
