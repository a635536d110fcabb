"""The Redis clients the kit's own modules share (archive, locks, checks), and TLS options.

One client per process and :class:`~project.broker.settings.RedisSettings` (and URL):
redis-py's pool notices a fork and reconnects in the child, so a prefork worker's children
never share sockets with their parent.

The pool is bounded and waits: at most ``KIT_REDIS_MAX_CONNECTIONS`` connections per client,
and a caller that finds them all busy (a threaded web server enqueueing from 200 threads) waits
for one, up to ``KIT_REDIS_POOL_TIMEOUT`` seconds, then gets
:class:`~project.errors.RedisPoolTimeoutError`. redis-py's default pool refuses such a caller at
once instead (``MaxConnectionsError`` past 100 connections).

:class:`BrokerConnection` (the kit app's kombu ``Connection``) keeps the kit's transport when
kombu fails over to the next URL of a list (``sentinel://a;sentinel://b``): kombu's own
``switch`` takes that URL's transport from its scheme, and a producer or worker carried on, after
a primary failover, on kombu's stock Redis channel, without the kit's fetch script, leases, bells
or paused queues.

A ``rediss://`` URL gets the same TLS options everywhere (kombu's broker connection, Celery's
result backend, redbeat, this client): the server certificate is verified against
``KIT_REDIS_TLS_CA_FILE`` (or the system's CAs) and its host name checked. There is no switch to
turn verification off: use a CA file for a private CA.
"""

from __future__ import annotations

import queue
import ssl
from functools import lru_cache
from typing import Any

import redis
from kombu.connection import Connection, ConnectionPool, PooledConnection
from redis.sentinel import Sentinel, SentinelConnectionPool

from project.broker.settings import RedisSettings
from project.broker.urls import SentinelTarget, is_sentinel, uses_tls
from project.errors import RedisPoolTimeoutError

__all__ = ["BrokerConnection", "as_text", "connect", "redis_client", "tls_options"]

SOCKET_TIMEOUT = 10.0  # seconds; a hung Redis fails a call instead of blocking a task forever
CONNECT_TIMEOUT = 5.0  # seconds


class _KeepsTransport(Connection):
    """``switch`` to another URL of the connection's list keeps the transport class."""

    def switch(self, conn_str: str) -> None:
        transport = self.transport_cls
        listed = {str(url).split("://", 1)[0] for url in self.alt or () if "://" in str(url)}
        super().switch(conn_str)  # type: ignore[no-untyped-call]
        if "://" in conn_str and conn_str.split("://", 1)[0] in listed:
            self.transport_cls = transport


class BrokerConnection(_KeepsTransport):
    """kombu's connection, keeping the transport it was made with across a failover to another
    URL of its list (module docstring); so do the connections of its pool (Celery's producer
    pool, which every ``apply_async`` draws from)."""

    def Pool(self, limit: int | None = None, **kwargs: Any) -> ConnectionPool:
        return _Pool(self, limit=limit, **kwargs)  # type: ignore[no-untyped-call]


class _Pooled(_KeepsTransport, PooledConnection):
    pass


class _Pool(ConnectionPool):
    def new(self) -> _Pooled:  # kombu's, with the kit's class
        return _Pooled(self, **dict(self.connection._info(resolve=False)))  # type: ignore[no-untyped-call]


def tls_options(settings: RedisSettings) -> dict[str, Any]:
    """redis-py's ``ssl_*`` keyword arguments for the configured CA and client certificate."""
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if settings.tls_ca_file:
        options["ssl_ca_certs"] = settings.tls_ca_file
    if settings.tls_cert_file:
        options["ssl_certfile"] = settings.tls_cert_file
        options["ssl_keyfile"] = settings.tls_key_file
    return options


def as_text(value: Any) -> str:
    """A Redis reply (bytes unless the client decodes) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


class _FreeConnections(queue.LifoQueue):  # type: ignore[type-arg]
    """A :class:`redis.BlockingConnectionPool`'s queue of free connections whose timed-out
    wait raises the kit's named error instead of redis-py's bare ``ConnectionError``."""

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        try:
            return super().get(block, timeout)
        except queue.Empty:
            raise RedisPoolTimeoutError(self.maxsize, timeout) from None


class _SentinelBlockingPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """Sentinel's primary-following pool, bounded and waiting like the plain one."""


def _pool_options(settings: RedisSettings) -> dict[str, Any]:
    return {
        "max_connections": settings.max_connections,
        "timeout": settings.pool_timeout,
        "queue_class": _FreeConnections,
    }


def connect(url: str, settings: RedisSettings, **options: Any) -> redis.Redis:
    """A client for ``url`` with a bounded, waiting pool (``settings.max_connections``,
    ``settings.pool_timeout``). Sentinel URLs give a client of the current primary, which asks
    the sentinels again after a failover (connections to the old primary fail, then resolve)."""
    if not is_sentinel(url):
        pool = redis.BlockingConnectionPool.from_url(
            url,
            **_pool_options(settings),
            **(tls_options(settings) if uses_tls(url) else {}),
            **options,
        )
        return redis.Redis.from_pool(pool)
    target = SentinelTarget.parse(url)
    sentinel_options = {k: v for k, v in options.items() if k.startswith("socket_")}
    sentinel = Sentinel(target.addresses, sentinel_kwargs=sentinel_options, **sentinel_options)  # type: ignore[no-untyped-call,unused-ignore]
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call,unused-ignore]
        settings.sentinel_master,
        connection_pool_class=_SentinelBlockingPool,
        db=target.db,
        password=target.password,
        **_pool_options(settings),
        **options,
    )
    return client


@lru_cache(maxsize=16)
def redis_client(settings: RedisSettings, url: str | None = None) -> redis.Redis:
    """The shared client for ``url`` (default: the broker's, ``settings.url``)."""
    return connect(
        url or settings.url,
        settings,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=30,
        retry_on_timeout=True,
    )
