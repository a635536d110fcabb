"""The baseline: Celery as it comes, for ``celery -A benchmarks.throughput.plain_app worker``.

Only the broker URL and the (already default) JSON serializer are set, so the numbers show what
stock Celery does on the same Redis: prefetch 4, early ack, no result backend, events off, one
queue named ``celery``. The URL comes from ``BENCH_BROKER_URL``; when it is unset the app keeps
Celery's own default broker (AMQP on localhost), so a stray worker never lands on a real Redis.
``BENCH_RESULT_BACKEND`` (a Redis URL) gives it Celery's Redis result backend, the one knob
the suite turns: the kit stores results, so stock Celery with a backend is the like-for-like
comparison of Redis work per task and of ``apply_async``.
The tasks are the same bodies the kit's worker runs (:mod:`benchmarks.core.bodies`).
"""

from __future__ import annotations

import os

from celery import Celery

from benchmarks.core import bodies

__all__ = ["app", "create_app"]


def create_app(broker_url: str | None, backend_url: str | None = None) -> Celery:
    """A plain app; the benchmark's producer builds its own with the private Redis URL."""
    plain = Celery("plain", broker=broker_url, backend=backend_url)
    plain.conf.task_serializer = "json"
    for kind in bodies.KINDS:
        plain.task(name=f"bench.{kind}", shared=False)(getattr(bodies, kind))
    return plain


app = create_app(os.environ.get(bodies.BROKER_URL_ENV), os.environ.get(bodies.RESULT_BACKEND_ENV))
