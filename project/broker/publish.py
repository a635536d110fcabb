"""The publishing side of the kit's Redis channel: a message, then its queue's bell.

Every publish pushes to its queue's *bell* (:data:`project.keys.queue_bell`) after the message,
so an idle worker blocked on the bell wakes and fetches it (:mod:`project.broker.fetch`). A
single ``apply_async`` sends the message, the bell and Flower's ``task-sent`` event in one
round trip (:meth:`Publishing.pipelined_publish`); ``enqueue_many``'s pipelined batch rings
each queue's bell once per flush (:class:`PublishBatch`); a message put back (a restore) rings
its bell too.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis
from kombu.utils.json import dumps

from project import keys
from project.errors import PublishRoundTripError

__all__ = ["BELLS_PER_FLUSH", "PublishBatch", "Publishing"]

#: At most this many idle workers are woken per queue by one pipelined batch of publishes.
BELLS_PER_FLUSH = 32

logger = logging.getLogger(__name__)


class PublishBatch(redis.PublishBatch):
    """kombu's pipelined publish (``enqueue_many``), ringing each queue's bell once per flush,
    after that flush's messages, instead of once per message.

    Messages the kit encoded itself (:meth:`push`) to the same list one after another leave
    as one variadic ``LPUSH``: Redis then parses, and redis-py packs and reads a reply for,
    one command instead of one per message. ``LPUSH key a b`` leaves the list as two
    ``LPUSH``es would (``b`` left of ``a``; the worker pops from the right, ``a`` first), and a
    message kombu routes (:meth:`publish`) first sends what was pushed before it, so the order
    of the call is kept. ``max_size`` counts messages.
    """

    def __init__(self, channel: Any, max_size: int) -> None:
        super().__init__(channel, max_size)  # type: ignore[no-untyped-call]
        self.rung: Counter[str] = Counter()
        self._key: str | None = None  # the list the pending messages go to
        self._pending: list[str] = []

    def push(self, key: str, queue: str, payload: str) -> None:
        """One encoded message into ``queue``'s list ``key`` (a flush at ``max_size``)."""
        self._check_usable()  # type: ignore[no-untyped-call]
        if key != self._key:
            self._emit()
            self._key = key
        self._pending.append(payload)
        self._buffered += 1
        self.rung[queue] += 1
        if self._buffered >= self.max_size:
            self.flush()

    def _emit(self) -> None:
        """The pending messages into the pipeline, as one LPUSH."""
        if self._pending:
            self.pipeline.lpush(self._key, *self._pending)
            self._pending = []
        self._key = None

    def publish(self, message: Any, **kwargs: Any) -> Any:
        self._emit()
        return super().publish(message, **kwargs)  # type: ignore[no-untyped-call]

    def flush(self) -> None:
        self._emit()
        if self._buffered and self.rung:
            for queue, published in self.rung.items():
                bells = [1] * min(published, BELLS_PER_FLUSH)  # one per idle worker to wake
                self.pipeline.lpush(keys.queue_bell(queue), *bells)
            self._buffered += len(self.rung)
        self.rung.clear()
        super().flush()  # type: ignore[no-untyped-call]

    def discard(self) -> None:
        self._pending, self._key = [], None
        super().discard()  # type: ignore[no-untyped-call]


class Publishing(redis.Channel):
    """The publishing half of the kit's channel (:class:`project.broker.transport.Channel`)."""

    #: The pipeline of the open :meth:`pipelined_publish` block.
    _publishing: Any = None

    def create_publish_batch(self, max_size: int) -> PublishBatch:
        """kombu's batch, which rings each queue's bell once per flush (see :meth:`_put`)."""
        return PublishBatch(self, max_size)

    @contextmanager
    def pipelined_publish(self) -> Iterator[None]:
        """Publishes made meanwhile go to Redis in one round trip as the block ends.

        ``apply_async`` writes a message, rings its queue's bell and publishes Flower's
        ``task-sent`` event: three commands that kombu sends as two round trips (the event on
        its own). :class:`project.lifecycle.celery_hooks.KitAMQP` opens this around each task
        it sends. A block that raises sends nothing, so the caller sees the publish fail; a
        lost connection is raised as :class:`~project.errors.PublishRoundTripError`, on which
        ``KitAMQP`` publishes again the ordinary way (kombu's retries, a failover survived).
        """
        if self._publishing is not None:  # nested: the outer block sends
            yield
            return
        with self.conn_or_acquire() as client:
            pipe = client.pipeline(transaction=False)
            self._publishing = pipe
            try:
                yield
            finally:
                self._publishing = None
            if pipe:
                try:
                    pipe.execute()
                except self.connection_errors as exc:
                    raise PublishRoundTripError(str(exc)) from exc

    def publish_plain(
        self, key: str, queue: str, payload: str, fanout: Sequence[tuple[str, str]] = ()
    ) -> None:
        """One encoded message into its priority's list ``key`` of ``queue``, the queue's bell,
        and ``fanout``'s (topic, payload) messages (the ``task-sent`` event), in one round trip:
        :mod:`project.enqueue.direct`'s publish of a plain task."""
        with self.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
            pipe.lpush(key, payload)
            pipe.lpush(keys.queue_bell(queue), 1)
            for topic, message in fanout:
                pipe.publish(topic, message)
            pipe.execute()

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        """kombu's publish, then the queue's bell (after the message, so a worker it wakes
        finds it): in the same round trip, or at the batch's flush."""
        batch = kwargs.get("_publish_batch")
        if isinstance(batch, PublishBatch):
            super()._put(queue, message, **kwargs)  # type: ignore[no-untyped-call]
            batch.rung[queue] += 1
        elif batch is not None or (self._expires and queue in self._expires):
            super()._put(queue, message, **kwargs)  # type: ignore[no-untyped-call]
            with self.conn_or_acquire() as client:
                client.lpush(keys.queue_bell(queue), 1)
        else:
            priority = self._get_message_priority(message, reverse=False)  # type: ignore[no-untyped-call]
            if self._publishing is not None:  # sent as the open pipelined_publish ends
                self._push(self._publishing, queue, priority, message)
                return
            with self.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
                self._push(pipe, queue, priority, message)
                pipe.execute()

    def _push(self, pipe: Any, queue: str, priority: int, message: Any) -> None:
        """The message into its priority's list, then the queue's bell, on ``pipe``."""
        pipe.lpush(self._q_for_pri(queue, priority), dumps(message))  # type: ignore[no-untyped-call]
        pipe.lpush(keys.queue_bell(queue), 1)

    def _put_fanout(self, exchange: str, message: Any, routing_key: str, **kwargs: Any) -> None:
        """kombu's fanout publish (task events), in the open :meth:`pipelined_publish`."""
        pipe = self._publishing
        if pipe is None or "_publish_batch" in kwargs:
            super()._put_fanout(exchange, message, routing_key, **kwargs)  # type: ignore[no-untyped-call]
            return
        payload = dumps(message)
        for topic in self._get_publish_topics(exchange, routing_key):  # type: ignore[no-untyped-call]
            pipe.publish(topic, payload)

    def _do_restore_message(
        self, payload: Any, exchange: str, routing_key: str, pipe: Any, leftmost: bool = False
    ) -> None:
        """kombu's restore (a message back to its queue), then its queue's bell."""
        super()._do_restore_message(payload, exchange, routing_key, pipe, leftmost)  # type: ignore[no-untyped-call]
        try:
            for queue in self._lookup(exchange, routing_key):  # type: ignore[no-untyped-call]
                pipe.lpush(keys.queue_bell(queue), 1)
        except self.connection_errors:
            raise
        except Exception:  # the bell is an optimisation: the restore itself must go on
            logger.debug("no bell rung for a restored message", exc_info=True)
