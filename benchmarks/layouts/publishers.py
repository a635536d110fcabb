"""Putting the benchmark's tasks into Redis, the way each framework's own producer does.

Two ways: :meth:`Publisher.preload` writes many tasks at once, pipelined where the library
allows it (before a worker starts, off the clock), and :meth:`Publisher.send_stamp` enqueues one
latency-stamped task through the library's ordinary call (``apply_async``, ``Broker.enqueue``,
``Queue.enqueue``), taking ``time.time()`` just before it, for the paced latency producer.

Everything runs in the benchmark's own process, against the private Redis. Dramatiq and RQ are
imported only when a layout of theirs runs, so the kit's benchmarks work without them.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from benchmarks.core import bodies
from benchmarks.core.bodies import QUEUE
from benchmarks.layouts.catalog import Layout
from benchmarks.throughput.overrides import Scalar
from benchmarks.throughput.preload import AppKind, producer_app
from benchmarks.throughput.preload import preload as celery_preload

__all__ = ["Kind", "Publisher", "publisher_for"]

Kind = Literal["noop", "sleep", "cpu", "stamp"]
RQ_BATCH = 1000  # jobs per enqueue_many pipeline


class Publisher(Protocol):
    def preload(self, kind: Kind, count: int) -> None: ...

    def send_stamp(self) -> None: ...

    def close(self) -> None: ...


class CeleryPublisher:
    """Stock Celery's or the kit's app, configured like the layout's workers
    (:func:`benchmarks.throughput.preload.producer_app`)."""

    def __init__(
        self,
        kind: AppKind,
        url: str,
        kit_env: Mapping[str, str],
        conf: Mapping[str, Scalar],
    ) -> None:
        self.app = producer_app(kind, url, kit_env, conf)
        # Stock Celery sends no priority; the kit's publish hook, connected process-wide once
        # the kit is imported here, would give the plain app's messages one. An explicit 0
        # keeps them in the list a stock producer uses.
        self.options: dict[str, Any] = {"priority": 0} if kind == "plain" else {}
        self.stamp = self.app.tasks["bench.stamp"]

    def preload(self, kind: Kind, count: int) -> None:
        celery_preload(self.app, count, f"bench.{kind}", **self.options)

    def send_stamp(self) -> None:
        self.stamp.apply_async((time.time(),), **self.options)

    def close(self) -> None:
        self.app.close()


class DramatiqPublisher:
    """A broker of our own (not the module-level one of
    :mod:`benchmarks.layouts.dramatiq_tasks`, which reads its URL from the environment at
    import), messages addressed by actor name."""

    def __init__(self, url: str) -> None:
        self.dramatiq: Any = importlib.import_module("dramatiq")
        brokers: Any = importlib.import_module("dramatiq.brokers.redis")
        self.broker = brokers.RedisBroker(url=url)
        tasks: Any = importlib.import_module("benchmarks.layouts.dramatiq_tasks")
        self.actor_names: dict[str, str] = tasks.ACTOR_NAMES

    def _message(self, kind: Kind, args: tuple[Any, ...] = ()) -> Any:
        return self.dramatiq.Message(
            queue_name=QUEUE,
            actor_name=self.actor_names[kind],
            args=args,
            kwargs={},
            options={},
        )

    def preload(self, kind: Kind, count: int) -> None:
        for _ in range(count):  # one Lua call per message: Dramatiq has no batch enqueue
            self.broker.enqueue(self._message(kind))

    def send_stamp(self) -> None:
        self.broker.enqueue(self._message("stamp", (time.time(),)))

    def close(self) -> None:
        self.broker.close()


class RQPublisher:
    """Jobs name the task bodies by dotted path, which the RQ worker imports."""

    def __init__(self, url: str) -> None:
        rq: Any = importlib.import_module("rq")
        redis: Any = importlib.import_module("redis")
        self.rq = rq
        self.connection = redis.Redis.from_url(url)
        self.queue = rq.Queue(QUEUE, connection=self.connection)
        self.functions = {kind: f"{bodies.__name__}.{kind}" for kind in bodies.KINDS}

    def preload(self, kind: Kind, count: int) -> None:
        function = self.functions[kind]
        while count > 0:
            batch = min(count, RQ_BATCH)
            self.queue.enqueue_many([self.rq.Queue.prepare_data(function) for _ in range(batch)])
            count -= batch

    def send_stamp(self) -> None:
        self.queue.enqueue(self.functions["stamp"], time.time())

    def close(self) -> None:
        self.connection.close()


def publisher_for(layout: Layout, url: str) -> Publisher:
    """A publisher that writes messages as the layout's own producers would."""
    if layout.framework == "dramatiq":
        return DramatiqPublisher(url)
    if layout.framework == "rq":
        return RQPublisher(url)
    return CeleryPublisher(layout.framework, url, layout.kit_env, layout.conf)
