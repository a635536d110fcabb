"""Celery's Redis result backend, made cheaper on both sides of a task.

Producer side. Celery's backend subscribes to a task's result channel as the task is published
(``on_task_call``): one round trip to Redis on every ``delay()``, whether or not anyone ever
waits for that result, and one subscription kept per task until its ``AsyncResult`` is garbage
collected. Here a subscription is made only when a caller waits: ``AsyncResult.get()`` and
``then()`` already subscribe before they read the stored result, and
:meth:`ResultWrites.iter_native` does the same for the members of a ``ResultSet`` or
``GroupResult`` that are not done yet. The subscription and the read go over two connections,
so Redis may run the read first: a waiter still waiting after :data:`RECHECK_EVERY` reads the
stored results itself (:class:`KitResultConsumer`), and a result whose publish it missed is
still handed out.

Worker side. Celery reads a task's stored result before writing a new one, so that a late
duplicate (a message redelivered after its task succeeded) never overwrites SUCCESS: a GET,
then SETEX and PUBLISH in MULTI/EXEC, two round trips and five commands. Here the same rule is
one Lua script, :data:`STORE_SCRIPT` (read, compare, write, publish), one round trip. The write
is the worker's largest Python cost per no-op task after Celery's own tracer (28 % of the
GIL-held time of a threads worker, py-spy), so the path to it is short: the result's metadata
without a settings lookup per write (:meth:`ResultWrites._get_result_meta`), the script sent
directly on a connection of the writing thread's own (:meth:`ResultWrites._sender`), and
Celery's retry policy (``ensure``) taken only once a write has failed on a connection error.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime
from functools import partial
from typing import Any

from celery import states
from celery.backends.redis import RedisBackend, ResultConsumer, SentinelBackend
from celery.exceptions import BackendStoreError
from kombu.utils.encoding import bytes_to_str
from redis import ConnectionPool
from redis.exceptions import NoScriptError

__all__ = [
    "STORE_SCRIPT",
    "KitRedisBackend",
    "KitResultConsumer",
    "KitSentinelBackend",
    "ResultWrites",
    "kit_backend",
]

logger = logging.getLogger(__name__)

# KEYS: the result's key. ARGV: the encoded result, seconds to keep it (0: forever).
# Writes and publishes unless the stored result says SUCCESS; returns 1 if it wrote, else 0.
STORE_SCRIPT = """
local current = redis.call('get', KEYS[1])
if current then
  local ok, meta = pcall(cjson.decode, current)
  if ok and type(meta) == 'table' and meta['status'] == 'SUCCESS' then return 0 end
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('set', KEYS[1], ARGV[1], 'EX', ttl)
else
  redis.call('set', KEYS[1], ARGV[1])
end
redis.call('publish', KEYS[1], ARGV[1])
return 1
"""


#: Seconds a waiter waits on the result channel before it reads the stored results itself.
RECHECK_EVERY = 1.0


class KitResultConsumer(ResultConsumer):  # type: ignore[misc]
    """Celery's result consumer, dropping a published result it has already handed out.

    A caller that waits subscribes, then reads the stored result. A result written between
    the two is read, and also delivered on the channel later; Celery then keeps that copy for
    the next waiter on the same task id. A task id used again (``apply_async(task_id=...)``
    after ``forget()``, the kit's unique and mail ids) got the first run's result. A ready
    result is known by task id and ``date_done``; a channel message for one already handed out
    is the same result again and is dropped.
    """

    _KEPT = 4096  # ready results remembered (task ids waited on recently)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._handed: OrderedDict[tuple[Any, Any], None] = OrderedDict()
        self._recheck_at = 0.0  # monotonic time of the next read of the stored results

    # A waiter subscribes on the pub/sub connection, then reads the stored result on another:
    # Redis may run that read before the SUBSCRIBE, and a result written and published between
    # the two reaches neither (seen once in a clean-clone run: a get() that timed out with its
    # result stored). A waiter still waiting after RECHECK_EVERY seconds reads the stored
    # results of every task it is subscribed to, then again every RECHECK_EVERY seconds: one
    # MGET, only while a wait lasts that long.

    def on_wait_for_pending(self, result: Any, **kwargs: Any) -> None:
        self._recheck_at = time.monotonic() + RECHECK_EVERY
        super().on_wait_for_pending(result, **kwargs)

    def drain_events(self, timeout: float | None = None) -> None:
        super().drain_events(timeout=timeout)
        now = time.monotonic()
        if now >= self._recheck_at:
            self._recheck_at = now + RECHECK_EVERY
            self._read_stored()

    def _read_stored(self) -> None:
        locked = getattr(self, "_locked", None)  # Celery 5.7's lock around the consumer state
        with locked() if locked is not None else nullcontext():
            keys = list(self.subscribed_to)
            if not keys:
                return
            for raw in self.backend.client.mget(keys):
                if raw:
                    self.on_state_change(self._decode_result(raw), None)

    def on_state_change(self, meta: Any, message: Any) -> None:
        if meta.get("status") in states.READY_STATES:
            seen = (meta.get("task_id"), meta.get("date_done"))
            if message is not None and seen in self._handed:
                return
            self._handed[seen] = None
            if len(self._handed) > self._KEPT:
                self._handed.popitem(last=False)
        super().on_state_change(meta, message)


class ResultWrites:
    """Mixin for Celery's Redis backends: one-script result writes, subscriptions on demand,
    and a result consumer that does not hand out one result twice."""

    ResultConsumer = KitResultConsumer

    app: Any
    client: Any
    connection_errors: Any
    expires: Any
    failure_expires: Any
    result_consumer: Any
    READY_STATES: frozenset[str]
    _MAX_STR_VALUE_SIZE: int
    _store_sha: str | None = None
    _extended: bool | None = None  # result_extended, read on the first write

    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Nothing: the result channel is subscribed to when someone waits (module docstring)."""

    def iter_native(self, result: Any, no_ack: bool = True, **kwargs: Any) -> Any:
        """Celery's ``ResultSet.join_native``: subscribe to every member not done yet, then
        let Celery read what is stored already and wait for the rest."""
        for node in getattr(result, "results", None) or ():
            if getattr(node, "_cache", True) is None and getattr(node, "id", None):
                self.result_consumer.consume_from(node.id)
        return super().iter_native(result, no_ack=no_ack, **kwargs)  # type: ignore[misc]

    def _get_result_meta(
        self,
        result: Any,
        state: str,
        traceback: Any,
        request: Any,
        format_date: bool = True,
        encode: bool = False,
    ) -> dict[str, Any]:
        """Celery's result metadata, field for field (``tests/project/test_worker_path.py``
        compares the two), without what it costs per write: Celery looks ``result_extended``
        up through the settings' key search and makes the time through ``app.now()``'s two
        conversions, a tenth of a threads worker's no-op task between them."""
        extended = self._extended
        if extended is None:
            extended = self._extended = bool(self.app.conf.find_value_for_key("extended", "result"))
        if extended and encode:  # Celery's encoded variant (database backends): not ours
            return super()._get_result_meta(  # type: ignore[misc,no-any-return]
                result, state, traceback, request, format_date, encode
            )
        date_done: Any = None
        if state in self.READY_STATES:
            date_done = datetime.now(self.app.timezone)
            if format_date:
                date_done = date_done.isoformat()
        meta: dict[str, Any] = {
            "status": state,
            "result": result,
            "traceback": traceback,
            "children": self.current_task_children(request),  # type: ignore[attr-defined]
            "date_done": date_done,
        }
        if request:
            if group_id := getattr(request, "group", None):
                meta["group_id"] = group_id
            if parent_id := getattr(request, "parent_id", None):
                meta["parent_id"] = parent_id
            if extended:
                delivery = getattr(request, "delivery_info", None)
                meta["name"] = getattr(request, "task", None)
                meta["args"] = getattr(request, "args", None)
                meta["kwargs"] = getattr(request, "kwargs", None)
                meta["worker"] = getattr(request, "hostname", None)
                meta["retries"] = getattr(request, "retries", None)
                meta["queue"] = delivery.get("routing_key") if delivery else None
                if stamps := getattr(request, "stamps", None):
                    stamped = request.stamped_headers
                    meta["stamped_headers"] = stamped
                    meta.update({k: v for k, v in stamps.items() if k in (stamped or ())})
        return meta

    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: Any = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        meta = self._get_result_meta(result, state, traceback, request)
        meta["task_id"] = bytes_to_str(task_id)
        value = self.encode(meta)  # type: ignore[attr-defined]
        if isinstance(value, str) and len(value) > self._MAX_STR_VALUE_SIZE:
            raise BackendStoreError(
                "value too large for Redis backend", state=state, task_id=task_id
            )
        expires = self.failure_expires if state == states.FAILURE else self.expires
        key = self.get_key_for_task(task_id)  # type: ignore[attr-defined]
        try:
            self._write_unless_succeeded(key, value, expires)
        except self.connection_errors:  # Celery's retry policy, from the first failure on
            self.ensure(self._write_unless_succeeded, (key, value, expires))  # type: ignore[attr-defined]
        return result

    def _write_unless_succeeded(self, key: Any, value: Any, expires: Any) -> None:
        ttl = max(int(expires or 0), 0)  # seconds: Celery's prepare_expires made it a number
        send = self._sender()
        sha = self._store_sha
        try:
            if sha is None:
                raise NoScriptError("not loaded yet")
            wrote = send("EVALSHA", sha, 1, key, value, ttl)
        except NoScriptError:  # first write, or Redis restarted or flushed its scripts
            sha = self._store_sha = bytes_to_str(send("SCRIPT", "LOAD", STORE_SCRIPT))
            wrote = send("EVALSHA", sha, 1, key, value, ttl)
        if not wrote:
            logger.debug("result %s kept: it says SUCCESS already", bytes_to_str(key))

    def _sender(self) -> Callable[..., Any]:
        """This thread's way to send a result write: one command in, its reply out.

        On redis-py's plain pool that is a connection of the thread's own, made by the pool
        (same address, timeouts, TLS and credentials). Through the pool, every write takes the
        pool's lock twice (to get a connection and to give it back); with a threads worker's
        16 threads writing, that was 7.5 % of the process's GIL-held time (py-spy), as much as
        the write's own send and read. A connection broken by an error reconnects on its next
        command (redis-py), and a forked child makes its own (the pid is checked). A Sentinel
        pool finds the primary's address as it lends a connection, not as the connection
        connects (a connection it made but did not lend goes to redis-py's default address):
        Sentinel writes keep going through the client and its pool.
        """
        local = self.__dict__.get("_senders")
        if local is None:
            local = self.__dict__.setdefault("_senders", threading.local())
        send: Callable[..., Any] | None = getattr(local, "send", None)
        if send is None or local.pid != os.getpid():
            pool = self.client.connection_pool
            if type(pool) is ConnectionPool:
                send = partial(_send_and_read, pool.make_connection())
            else:
                send = self.client.execute_command
            local.send, local.pid = send, os.getpid()
        return send


def _send_and_read(connection: Any, *command: Any) -> Any:
    """One command on ``connection``, which nothing else uses, and its reply."""
    connection.send_command(*command)
    return connection.read_response()


class KitRedisBackend(ResultWrites, RedisBackend):  # type: ignore[misc]
    """``redis://`` and ``rediss://`` result backends."""


class KitSentinelBackend(ResultWrites, SentinelBackend):  # type: ignore[misc]
    """``sentinel://`` result backends."""


def kit_backend(backend_cls: type) -> type:
    """The kit's variant of Celery's backend class ``backend_cls``, or that class itself."""
    if backend_cls is SentinelBackend:
        return KitSentinelBackend
    if backend_cls is RedisBackend:
        return KitRedisBackend
    return backend_cls
