"""kombu's Redis transport with the kit's queue ordering, atomic fetch and pause.

Stock kombu builds each ``BRPOP`` key list *priority-major*: every queue's priority-0 list,
then every queue's priority-3 list, and so on. A priority-0 message in ``low`` then beats a
priority-5 one in ``critical``, and the queue weights only matter among equal priorities.
The kit decides the other way, like Asynq, where queues *are* the priority: the queue order
(weighted draw or strict) picks the queue, and the task priority (0 most urgent ... 9 least)
orders messages *within* that queue.

Every fetch is one Lua script (:mod:`project.broker.fetch`), like Asynq's dequeue script: it
pops up to the consumer's free prefetch window (queue order, then priority) and records every
message it pops as unacknowledged in the same atomic step, skipping paused queues.

After a fetch finds every queue empty the worker waits without popping anything: it blocks in
``BLPOP`` on its queues' *bells* (:data:`project.keys.queue_bell`), one-item lists that every
publish (and every message put back, and ``kit queue resume``) pushes to, and runs the script
once the bell rings, or after ``brpop_timeout`` (1 s) for messages pushed by something other
than this transport. A bell carries nothing, so losing one only costs that second.

The script is sent with the ``BLPOP``, in the same write: Redis runs a blocked client's next
command as soon as the block ends, so the bell's wake-up and the fetch are one round trip, not
two (on an idle worker, the message's way from publish to pool is a round trip shorter). The
fetch is as atomic as ever; it reads the paused set when it runs, records its messages at the
time it runs (Redis's clock: a lease is measured from the fetch, not from the wait's start),
and asks for no more than the free window at the wait's start, which only grows while the
worker waits.

Celery selects this class through ``broker_transport`` while ``broker_url`` stays a plain
``redis://`` URL; :meth:`Transport.as_uri` keeps that scheme in the URL the connection shows
(Flower picks its broker client by it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from queue import Empty
from time import monotonic, time
from typing import Any
from urllib.parse import quote

from kombu.transport import redis, virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from kombu.utils.url import as_url
from redis.exceptions import NoScriptError

from project import keys
from project.broker import fetch
from project.broker.publish import BELLS_PER_FLUSH, Publishing
from project.broker.qos import DeferredAcks, LoopTicks, QoS
from project.broker.queues import StrictCycle, WeightedCycle

__all__ = [
    "BELLS_PER_FLUSH",
    "SENTINEL_TRANSPORT",
    "TRANSPORT",
    "Channel",
    "QoS",
    "SentinelTransport",
    "Transport",
]

TRANSPORT = "project.broker.transport:Transport"
#: The same behaviour on kombu's Sentinel transport (``sentinel://`` URLs).
SENTINEL_TRANSPORT = "project.broker.transport:SentinelTransport"

logger = logging.getLogger(__name__)


class Channel(DeferredAcks, Publishing, redis.Channel):
    """A Redis channel that fetches with :mod:`project.broker.fetch` and waits on its queues'
    bells."""

    QoS = QoS

    queue_weights: Mapping[str, int] = {}
    #: The delivery tag the Lua fetch recorded, while that message is being delivered.
    prerecorded: str | None = None
    #: Queues had work at the last fetch (or a bell rang since): fetch, do not wait.
    _busy: bool = True
    #: What the poller waits for: ``EVAL`` (a fetch) or ``BLPOP`` (a wait, then its fetch).
    _pending: str = "EVAL"
    #: Fetches sent (every ``fetch.TRIM_EVERY``-th trims the bells).
    _fetches: int = 0
    _shared_client: Any = None
    #: Delivery tags acknowledged on the event loop, to forget in the next fetch script.
    _deferred_acks: list[str]
    #: Loop turns the deferred acknowledgements have waited for a fetch to ride on.
    _acks_waited: int = 0
    #: SHA-1 of the fetch script once loaded (EVALSHA); None sends the source (EVAL).
    _fetch_sha: str | None = None
    #: The acknowledgements riding on the fetch in flight.
    _riding: list[str]
    #: The pipeline of the open :meth:`pipelined_publish` block.
    _publishing: Any = None
    from_transport_options = (  # type: ignore[assignment]
        *redis.Channel.from_transport_options,
        "queue_weights",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._deferred_acks = []
        self._riding = []
        self._no_ack_queues: set[str] = set()
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        if isinstance(self._queue_cycle, WeightedCycle | StrictCycle):
            self._queue_cycle.set_weights(self.queue_weights)

    def basic_consume(
        self, queue: str, no_ack: bool, callback: Any, consumer_tag: str, **kwargs: Any
    ) -> None:
        """kombu's consume, remembering the queues whose messages are never acknowledged (a
        control reply queue): the fetch script must not record those as delivered."""
        if no_ack:
            self._no_ack_queues.add(queue)
        else:
            self._no_ack_queues.discard(queue)
        super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)  # type: ignore[no-untyped-call]

    def basic_cancel(self, consumer_tag: str) -> Any:
        queue = self._tag_to_queue.get(consumer_tag)
        result = super().basic_cancel(consumer_tag)  # type: ignore[no-untyped-call]
        if queue is not None and queue not in self._tag_to_queue.values():
            self._no_ack_queues.discard(queue)
        return result

    def _bell(self, queue: str) -> str:
        return self.global_keyprefix + keys.queue_bell(queue)

    def _fetch_args(
        self, queues: list[str], count: int, acked: Sequence[str] = (), *, queued: bool = False
    ) -> list[Any]:
        """``EVAL`` of the fetch script for up to ``count`` messages of ``queues``, in this
        order (kombu's keys prefixed by hand: kombu's prefixing client does not know ``EVAL``);
        ``queued``: sent behind a wait, so its delivery time is taken when it runs."""
        prefix = self.global_keyprefix
        script_keys = [prefix + self.unacked_key, prefix + self.unacked_index_key, keys.PAUSED]
        for queue in queues:
            script_keys.append(self._bell(queue))
            script_keys += [prefix + self._q_for_pri(queue, pri) for pri in self.priority_steps]  # type: ignore[no-untyped-call]
        self._fetches += 1
        return fetch.fetch_command(
            script_keys,
            len(self.priority_steps),
            queues,
            count,
            now=None if queued else time(),
            lmpop=self._has_lmpop,
            trim=self._fetches % fetch.TRIM_EVERY == 0,
            acked=acked,
            unrecorded=self._no_ack_queues,
            sha=self._fetch_sha,
        )

    @cached_property
    def _has_lmpop(self) -> bool:
        """Whether the server has ``LMPOP`` (Redis 7); asked once per channel."""
        try:
            with self.conn_or_acquire() as client:
                version = str(client.info("server").get("redis_version", "0"))
        except self.connection_errors:
            raise
        except Exception:  # INFO refused (some managed servers): the portable script
            return False
        major = version.split(".")[0]
        return major.isdigit() and int(major) >= 7

    def _brpop_start(self, timeout: float | None = None) -> None:
        # Replaces kombu's BRPOP: a fetch while there is work, else a wait that pops nothing.
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        window = self.qos.can_consume_max_estimate() or fetch.MAX_BATCH
        if self._busy:
            self._pending = "EVAL"
            self._riding, self._deferred_acks = self._deferred_acks, []
            self._acks_waited = 0
            commands = [self._fetch_args(queues, window, self._riding)]
        else:
            self.flush_acks()  # before a wait of up to a second
            wait = self.brpop_timeout if timeout is None else timeout
            self._pending = "BLPOP"
            commands = [
                ["BLPOP", *(self._bell(q) for q in queues), wait or 0],
                self._fetch_args(queues, window, queued=True),  # runs as the wait ends
            ]
        connection = self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()  # type: ignore[assignment]
        connection.send_packed_command(connection.pack_commands(commands))

    def _brpop_read(self, **options: Any) -> bool:
        try:
            try:
                reply = self.client.parse_response(self.client.connection, self._pending, **options)
                if self._pending == "BLPOP":  # a bell rang, or a second passed: its fetch ran
                    self._busy = True  # if its fetch fails below, fetch again next
                    reply = self.client.parse_response(self.client.connection, "EVAL")
            except NoScriptError:  # Redis restarted or flushed its scripts: load it again
                self._deferred_acks[:0] = self._riding
                self._fetch_sha = None
                raise Empty() from None
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            finally:
                self._riding = []
            if self._fetch_sha is None:
                self._fetch_sha = fetch.FETCH_SHA  # EVAL cached it: EVALSHA from now on
            fetched = fetch.parse_reply(reply)
            if not fetched:
                self._busy = False  # nothing to fetch: wait on the bells next
                raise Empty()
            skip = len(self.global_keyprefix)
            for key, payload in fetched:
                message = loads(bytes_to_str(payload))
                queue = bytes_to_str(key)[skip:].rsplit(self.sep, 1)[0]
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
            try:
                reply = client.execute_command(*self._fetch_args([queue], 1))
            except NoScriptError:
                self._fetch_sha = None
                reply = client.execute_command(*self._fetch_args([queue], 1))
            fetched = fetch.parse_reply(reply)
        if not fetched:
            return None
        message = self.Message(loads(bytes_to_str(fetched[0][1])), channel=self)  # type: ignore[no-untyped-call]
        virtual.QoS.append(self.qos, message, message.delivery_tag)
        return message

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        """A client for one command or pipeline: ``client``, else the channel's shared one.

        kombu builds a new ``redis.Redis`` object on every call (for each acknowledgement and
        each event published), which costs more than the command it sends. A client over a
        connection pool is safe to share between threads; a new one is made only when kombu
        replaced the pool (after a fork or a lost connection).
        """
        if client:
            yield client
            return
        pool = self.pool
        shared = self._shared_client
        if shared is None or shared.connection_pool is not pool:
            shared = self._shared_client = self._create_client()  # type: ignore[no-untyped-call]
        yield shared


class Transport(LoopTicks, redis.Transport):
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


class SentinelTransport(LoopTicks, redis.SentinelTransport):
    Channel = SentinelChannel
    scheme = "sentinel"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self.can_parse_url = True  # see Transport.__init__

    def as_uri(self, uri: str, include_password: bool = False, mask: str = "**") -> str:
        return _as_uri(self, include_password, mask)
