"""Queue pause, kept in Redis so every worker honours it, those started later included.

``kit queue pause Q`` adds Q to the ``kit:paused`` set, and that is the pause: every fetch of
every worker is one Lua script that skips the queues in the set
(:mod:`project.broker.transport`, like Asynq's dequeue script), so once the command returns
no worker fetches from Q, on the idle path as on the busy one. A message already fetched stays
with its worker (one per pool process at most, with the default prefetch). Messages stay in
Redis while their queue is paused; nothing is moved or lost. ``resume`` rings the queue's
bell, so idle workers look at once.

Workers do not stop consuming a paused queue: cancelling and re-adding consumers was how a
pause used to work, a second late, and re-adding took every configured queue for the worker's
own, so a worker started with ``-Q default`` began consuming ``low`` after a resume. The
:class:`Pause` middleware only reports, in the worker's log, the pauses and resumes it sees.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from project import keys
from project.broker.connections import as_text
from project.lifecycle.kit import kit_of
from project.lifecycle.middleware import Middleware

__all__ = ["Pause", "pause", "paused_queues", "resume"]

logger = logging.getLogger(__name__)

WATCH_INTERVAL = 1.0  # seconds between the log's looks at the paused set


def paused_queues(client: redis.Redis) -> set[str]:
    return {as_text(m) for m in client.smembers(keys.PAUSED)}


def pause(client: redis.Redis, queue: str) -> bool:
    """True if the queue was running and is now paused: no worker fetches from it from now."""
    return bool(client.sadd(keys.PAUSED, queue))


def resume(client: redis.Redis, queue: str) -> bool:
    """True if the queue was paused; its bell wakes the idle workers that consume it."""
    with client.pipeline(transaction=True) as pipe:
        pipe.srem(keys.PAUSED, queue)
        pipe.lpush(keys.queue_bell(queue), 1)
        removed, _ = pipe.execute()
    return bool(removed)


class Pause(Middleware):
    """Logs the pauses and resumes a worker sees; the fetch script is what honours them."""

    def __init__(self) -> None:
        self.paused: set[str] = set()
        self._timer: Any = None

    def worker_start(self, consumer: Any) -> None:
        self.paused = set()
        self.check(consumer)
        self._timer = consumer.timer.call_repeatedly(
            WATCH_INTERVAL, self.check, (consumer,), priority=10
        )

    def worker_stop(self, consumer: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def check(self, c: Any) -> None:
        try:
            wanted = paused_queues(kit_of(c.app).redis)
        except redis.RedisError as exc:
            logger.debug("pause state not read: %s", exc)
            return
        own = _consumed(c)
        for queue in sorted(wanted - self.paused):
            if queue in own:
                logger.warning("queue %s paused: not fetching from it until resumed", queue)
            else:
                logger.info("queue %s paused (not consumed by this worker)", queue)
        for queue in sorted(self.paused - wanted):
            if queue in own:
                logger.warning("queue %s resumed", queue)
            else:
                logger.info("queue %s resumed (not consumed by this worker)", queue)
        self.paused = wanted


def _consumed(c: Any) -> set[str]:
    """The queues this worker consumes now (``-Q``, and any ``add_consumer`` since)."""
    consumer = getattr(c, "task_consumer", None)
    return {q.name for q in getattr(consumer, "queues", ())}
