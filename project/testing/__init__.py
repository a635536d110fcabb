"""Testing tasks with the kit's real semantics: a private Redis, real workers, no mocks.

A mocked broker cannot show what the kit adds to Celery (leases, retries with backoff, the
archive, unique locks), and a shared Redis makes tests depend on each other. The pytest plugin
(:mod:`project.testing.plugin`, registered as the ``celery_kit`` entry point, so it loads by
itself once celery-kit is installed) gives every session a redis-server of its own and every
test an empty one, and has fixtures for in-thread and subprocess workers; see its docstring for
the list. The helpers below are for tests and scripts that build their own.

``project`` never imports this package: it is loaded only under pytest.
"""

from __future__ import annotations

from project.testing.polling import eventually
from project.testing.workers import CeleryProcess, WorkerProcess, in_thread_worker
from project.up.redis_server import RedisServer, free_port

__all__ = [
    "CeleryProcess",
    "RedisServer",
    "WorkerProcess",
    "eventually",
    "free_port",
    "in_thread_worker",
]
