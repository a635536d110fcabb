"""kombu's Redis transport with the kit's queue ordering, atomic fetch and pause.

Stock kombu builds each ``BRPOP`` key list *priority-major*: every queue's priority-0 list,
then every queue's priority-3 list, and so on. A priority-0 message in ``low`` then beats a
priority-5 one in ``critical``, and the queue weights only matter among equal priorities.
The kit decides the other way, like Asynq, where queues *are* the priority: the queue order
(weighted draw or strict) picks the queue, and the task priority (0 most urgent ... 9 least)
orders messages *within* that queue.

Every fetch is one Lua script, like Asynq's dequeue script. kombu's ``BRPOP`` pops a message
and only then, in a second write, records it as unacknowledged: a worker killed between the
two, or a reply Redis drops as it shuts down, loses the message. The script pops the next
message (queue order, then priority) and records it in ``unacked`` and ``unacked_index`` in one
atomic step, so a fetched message is always either in its queue or recorded: a lost reply or
a dead worker leaves it recorded, and the visibility timeout returns it. The script also skips
every queue in the paused set (``kit queue pause``), so a pause holds from the moment the set
is written, on every worker.

After a fetch finds every queue empty the worker waits without popping anything: it blocks in
``BLPOP`` on its queues' *bells* (:data:`project.keys.queue_bell`), one-item lists that every
publish (and every message put back, and ``kit queue resume``) pushes to, and runs the script
once the bell rings, or after ``brpop_timeout`` (1 s) for messages pushed by something other
than this transport. A bell carries nothing, so losing one only costs that second.

Celery selects this class through ``broker_transport`` while ``broker_url`` stays a plain
``redis://`` URL; :meth:`Transport.as_uri` keeps that scheme in the URL the connection shows
(Flower picks its broker client by it).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from queue import Empty
from time import monotonic, time
from typing import Any
from urllib.parse import quote

from kombu.transport import redis, virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from kombu.utils.url import as_url
from redis.exceptions import ConnectionError as RedisConnectionError

from project import keys
from project.broker.queues import StrictCycle, WeightedCycle

__all__ = ["SENTINEL_TRANSPORT", "TRANSPORT", "Channel", "QoS", "SentinelTransport", "Transport"]

TRANSPORT = "project.broker.transport:Transport"
#: The same behaviour on kombu's Sentinel transport (``sentinel://`` URLs).
SENTINEL_TRANSPORT = "project.broker.transport:SentinelTransport"
#: At most this many idle workers are woken per queue by one pipelined batch of publishes.
BELLS_PER_FLUSH = 32

logger = logging.getLogger(__name__)

# KEYS: unacked hash, unacked index, paused set, then per queue in fetch order its bell and
# its priority lists. ARGV: now, the number of priority lists per queue, the queue names.
# Returns {key, payload} like BRPOP, or nil when no queue that is not paused holds a message.
_FETCH = """
local steps = tonumber(ARGV[2])
local queues = #ARGV - 2
for q = 1, queues do
  local bell = 4 + (q - 1) * (steps + 1)
  if redis.call('sismember', KEYS[3], ARGV[q + 2]) == 0 then
    for i = bell + 1, bell + steps do
      local payload = redis.call('rpop', KEYS[i])
      if payload then
        local message = cjson.decode(payload)
        local properties = message['properties']
        local delivery = properties['delivery_info']
        local tag = properties['delivery_tag']
        local record = '[' .. payload .. ',' .. cjson.encode(delivery['exchange']) .. ','
          .. cjson.encode(delivery['routing_key']) .. ']'
        redis.call('zadd', KEYS[2], ARGV[1], tag)
        redis.call('hset', KEYS[1], tag, record)
        redis.call('ltrim', KEYS[bell], 0, 0)
        return {KEYS[i], payload}
      end
    end
  end
end
for q = 1, queues do
  redis.call('del', KEYS[4 + (q - 1) * (steps + 1)])
end
return nil
"""


class QoS(redis.QoS):
    """kombu's QoS, made safe for the moment a connection is lost.

    After a lost connection Celery 5.7 collects the kombu connection and then closes it; the
    second close can reach a channel whose transport is already detached, and kombu fails with
    ``AttributeError`` (not a connection error). Raised from Celery's reconnect handler, that
    stopped the whole worker with messages still queued. Here it is a connection error (logged
    by Celery, which reconnects) or, while closing, a warning: the messages concerned are still
    in Redis's ``unacked`` hash, and the visibility timeout returns them to their queue.
    """

    def restore_unacked_once(self, stderr: Any = None) -> None:
        held = len(self._delivered)
        try:
            super().restore_unacked_once(stderr)  # type: ignore[no-untyped-call]
        except (AttributeError, *self.channel.connection_errors) as exc:
            logger.warning(
                "%d unacknowledged message(s) left in Redis; the visibility timeout restores "
                "them (%s: %s)",
                held,
                type(exc).__name__,
                exc,
            )

    def ack(self, delivery_tag: str) -> None:
        try:
            super().ack(delivery_tag)  # type: ignore[no-untyped-call]
        except AttributeError as exc:
            raise _detached(exc) from exc

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue)  # type: ignore[no-untyped-call]
        except AttributeError as exc:
            raise _detached(exc) from exc

    def append(self, message: Any, delivery_tag: str) -> None:
        if self.channel.prerecorded == delivery_tag:
            # Fetched by the Lua script, which recorded it already: only remember it here.
            virtual.QoS.append(self, message, delivery_tag)
            return
        super().append(message, delivery_tag)  # type: ignore[no-untyped-call]


def _detached(exc: AttributeError) -> Exception:
    return RedisConnectionError(f"channel closed after a lost connection ({exc})")


class PublishBatch(redis.PublishBatch):
    """kombu's pipelined publish (``enqueue_many``), ringing each queue's bell once per flush,
    after that flush's messages, instead of once per message."""

    def __init__(self, channel: Any, max_size: int) -> None:
        super().__init__(channel, max_size)  # type: ignore[no-untyped-call]
        self.rung: Counter[str] = Counter()

    def flush(self) -> None:
        if self._buffered and self.rung:
            for queue, published in self.rung.items():
                bells = [1] * min(published, BELLS_PER_FLUSH)  # one per idle worker to wake
                self.pipeline.lpush(keys.queue_bell(queue), *bells)
            self._buffered += len(self.rung)
        self.rung.clear()
        super().flush()  # type: ignore[no-untyped-call]


class Channel(redis.Channel):
    """A Redis channel that fetches with :data:`_FETCH` and waits on its queues' bells."""

    QoS = QoS

    queue_weights: Mapping[str, int] = {}
    #: The delivery tag the Lua fetch recorded, while that message is being delivered.
    prerecorded: str | None = None
    #: Queues had work at the last fetch (or a bell rang since): fetch, do not wait.
    _busy: bool = True
    #: The command whose reply the poller waits for: ``EVAL`` (a fetch) or ``BLPOP`` (a wait).
    _pending: str = "EVAL"
    from_transport_options = (  # type: ignore[assignment]
        *redis.Channel.from_transport_options,
        "queue_weights",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        if isinstance(self._queue_cycle, WeightedCycle | StrictCycle):
            self._queue_cycle.set_weights(self.queue_weights)

    def _bell(self, queue: str) -> str:
        return self.global_keyprefix + keys.queue_bell(queue)

    def _fetch_args(self, queues: list[str]) -> list[Any]:
        """``EVAL`` of the fetch script over ``queues``, in this order (kombu's keys prefixed
        by hand: kombu's prefixing client does not know ``EVAL``)."""
        prefix = self.global_keyprefix
        script_keys = [prefix + self.unacked_key, prefix + self.unacked_index_key, keys.PAUSED]
        for queue in queues:
            script_keys.append(self._bell(queue))
            script_keys += [prefix + self._q_for_pri(queue, pri) for pri in self.priority_steps]  # type: ignore[no-untyped-call]
        steps = len(self.priority_steps)
        return ["EVAL", _FETCH, len(script_keys), *script_keys, time(), steps, *queues]

    def _brpop_start(self, timeout: float | None = None) -> None:
        # Replaces kombu's BRPOP: a fetch while there is work, else a wait that pops nothing.
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        if self._busy:
            self._pending, command = "EVAL", self._fetch_args(queues)
        else:
            wait = self.brpop_timeout if timeout is None else timeout
            self._pending = "BLPOP"
            command = ["BLPOP", *(self._bell(q) for q in queues), wait or 0]
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()  # type: ignore[assignment]
        self.client.connection.send_command(*command)

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                reply = self.client.parse_response(self.client.connection, self._pending, **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if self._pending == "BLPOP":
                self._busy = True  # a bell rang, or a second passed: fetch next
                raise Empty()
            if not reply:
                self._busy = False  # nothing to fetch: wait on the bells next
                raise Empty()
            key, payload = reply
            message = loads(bytes_to_str(payload))
            queue = bytes_to_str(key)[len(self.global_keyprefix) :].rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(queue)
            self.prerecorded = message["properties"]["delivery_tag"]
            try:
                self.connection._deliver(message, queue)
            finally:
                self.prerecorded = None
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()  # type: ignore[no-untyped-call]

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        """kombu's synchronous get (``Queue.get``), fetched and recorded by the same script."""
        if no_ack:  # nothing to record: kombu's plain pop
            return super().basic_get(queue, no_ack=True, **kwargs)  # type: ignore[no-untyped-call]
        with self.conn_or_acquire() as client:
            reply = client.execute_command(*self._fetch_args([queue]))
        if not reply:
            return None
        message = self.Message(loads(bytes_to_str(reply[1])), channel=self)  # type: ignore[no-untyped-call]
        virtual.QoS.append(self.qos, message, message.delivery_tag)
        return message

    def create_publish_batch(self, max_size: int) -> PublishBatch:
        """kombu's batch, which rings each queue's bell once per flush (see :meth:`_put`)."""
        return PublishBatch(self, max_size)

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
            with self.conn_or_acquire() as client, client.pipeline(transaction=False) as pipe:
                pipe.lpush(self._q_for_pri(queue, priority), dumps(message))  # type: ignore[no-untyped-call]
                pipe.lpush(keys.queue_bell(queue), 1)
                pipe.execute()

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


class Transport(redis.Transport):
    """The kit's transport; its connections show ``redis://`` URLs (:meth:`as_uri`)."""

    Channel = Channel
    scheme = "redis"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        # kombu asks the *class* whether a transport parses its URLs (this one does not: kombu
        # parses them as for stock Redis) and the *instance* whether it makes its own URI,
        # which kombu would otherwise start with the broker_transport path,
        # ``project.broker.transport:Transport://``: Flower refused that as a broker.
        self.can_parse_url = True

    def as_uri(self, uri: str, include_password: bool = False, mask: str = "**") -> str:
        """The connection's URL with a scheme Flower and operators know."""
        return _as_uri(self, include_password, mask)


def _as_uri(transport: Any, include_password: bool, mask: str) -> str:
    # kombu's Connection.as_uri for a transport it does not parse URLs for, but our scheme.
    info = transport.client.info()
    password = info["password"]
    if not include_password:
        password = mask
    elif callable(password):
        password = password()
    scheme = "rediss" if transport.scheme == "redis" and info["ssl"] else transport.scheme
    return str(
        as_url(
            scheme,
            info["hostname"] or "localhost",
            info["port"],
            info["userid"],
            password,
            quote(info["virtual_host"] or ""),
            sanitize=not include_password,
            mask=mask,
        )
    )


class SentinelChannel(Channel, redis.SentinelChannel):
    """The kit's channel, connecting to whichever server Sentinel names the primary."""

    from_transport_options = (  # type: ignore[assignment]
        *redis.SentinelChannel.from_transport_options,
        "queue_weights",
    )


class SentinelTransport(redis.SentinelTransport):
    Channel = SentinelChannel
    scheme = "sentinel"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self.can_parse_url = True  # see Transport.__init__

    def as_uri(self, uri: str, include_password: bool = False, mask: str = "**") -> str:
        return _as_uri(self, include_password, mask)
