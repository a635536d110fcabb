"""Background loops of which one runs per Redis: each worker runs one, a lock picks the leader.

The forwarder (delayed tasks) and the aggregation flusher are such loops. Every worker starts
one in its main process when ready; a :class:`~project.coordination.locks.RedisLock` renewed at every round
makes exactly one active, and another takes over within the lock's TTL if the leader's worker
dies.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

from celery import Celery, signals

from project.broker.connections import redis_client
from project.config import current_settings
from project.coordination.locks import RedisLock

__all__ = ["LeaderLoop", "run_in_workers"]

logger = logging.getLogger(__name__)


class LeaderLoop:
    """Calls :meth:`round` every ``interval`` seconds while this process holds ``lock_key``."""

    #: The thread's name (``ps -L``, py-spy).
    thread_name = "kit-leader"

    def __init__(self, lock_key: str, interval: float) -> None:
        client = redis_client(current_settings().redis_url)
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


def run_in_workers(app: Celery, name: str, factory: Callable[[], LeaderLoop | None]) -> None:
    """Start ``factory()``'s loop in each worker's main process when ready; stop it at
    shutdown. ``factory`` may return None (the feature is switched off)."""
    state: dict[str, LeaderLoop] = {}

    def on_ready(**_: Any) -> None:
        if name in state:
            return
        loop = factory()
        if loop is not None:
            state[name] = loop
            loop.start()

    def on_shutdown(**_: Any) -> None:
        loop = state.pop(name, None)
        if loop is not None:
            loop.stop()

    signals.worker_ready.connect(on_ready, weak=False)
    signals.worker_shutdown.connect(on_shutdown, weak=False)
