"""Background loops of which one runs per Redis: each worker runs one, a lock picks the leader.

The forwarder (delayed tasks) and the aggregation flusher are such loops. Every worker starts
one in its main process when its consumer starts (:class:`LeaderMiddleware`); a
:class:`~project.coordination.locks.RedisLock` renewed at every round makes exactly one active,
and another takes over within the lock's TTL if the leader's worker dies.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

import redis

from project.coordination.locks import RedisLock
from project.lifecycle.middleware import Middleware

__all__ = ["LeaderLoop", "LeaderMiddleware"]

logger = logging.getLogger(__name__)


class LeaderLoop:
    """Calls :meth:`round` every ``interval`` seconds while this process holds ``lock_key``."""

    #: The thread's name (``ps -L``, py-spy).
    thread_name = "kit-leader"

    def __init__(self, client: redis.Redis, lock_key: str, interval: float) -> None:
        self.interval = interval
        token = f"{socket.gethostname()}:{os.getpid()}"
        # Five missed rounds before another worker's loop may take over.
        self.lock = RedisLock(client, lock_key, token, ttl=max(5.0, interval * 5))
        self._leader = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._leader:
            self.lock.release()
            self._leader = False

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception:
                logger.warning("%s: round failed; retrying", self.thread_name, exc_info=True)

    def run_once(self) -> int:
        """Lead or stand by; as leader, do one round. Returns what the round reports."""
        self._leader = self.lock.renew() if self._leader else self.lock.acquire()
        return self.round() if self._leader else 0

    def round(self) -> int:
        raise NotImplementedError


class LeaderMiddleware(Middleware):
    """Runs :meth:`make_loop`'s loop in the worker's main process, from the consumer's first
    start (it keeps running across reconnects) to the worker's shutdown."""

    def __init__(self) -> None:
        self.loop: LeaderLoop | None = None

    def make_loop(self, consumer: Any) -> LeaderLoop | None:
        """The loop, or None when the feature is switched off."""
        raise NotImplementedError

    def worker_start(self, consumer: Any) -> None:
        if self.loop is None:
            self.loop = self.make_loop(consumer)
            if self.loop is not None:
                self.loop.start()

    def worker_shutdown(self, consumer: Any) -> None:
        loop, self.loop = self.loop, None
        if loop is not None:
            loop.stop()
