"""The Redis client the kit's own modules share (archive, locks, checks), and TLS options.

One client per process and URL: redis-py's pool notices a fork and reconnects in the child, so a
prefork worker's children never share sockets with their parent.

A ``rediss://`` URL gets the same TLS options everywhere (kombu's broker connection, Celery's
result backend, redbeat, this client): the server certificate is verified against
``KIT_REDIS_TLS_CA_FILE`` (or the system's CAs) and its host name checked. There is no switch to
turn verification off: use a CA file for a private CA.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from redis.sentinel import Sentinel

from project.config import Settings, current_settings

__all__ = [
    "SentinelTarget",
    "as_text",
    "connect",
    "is_sentinel",
    "redis_client",
    "tls_options",
    "uses_tls",
]


def uses_tls(url: str) -> bool:
    return urlsplit(url).scheme == "rediss"


def is_sentinel(url: str) -> bool:
    return urlsplit(url.split(";")[0]).scheme == "sentinel"


def tls_options(settings: Settings) -> dict[str, Any]:
    """redis-py's ``ssl_*`` keyword arguments for the configured CA and client certificate."""
    options: dict[str, Any] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    if settings.redis_tls_ca_file:
        options["ssl_ca_certs"] = settings.redis_tls_ca_file
    if settings.redis_tls_cert_file:
        options["ssl_certfile"] = settings.redis_tls_cert_file
        options["ssl_keyfile"] = settings.redis_tls_key_file
    return options


SOCKET_TIMEOUT = 10.0  # seconds; a hung Redis fails a call instead of blocking a task forever
CONNECT_TIMEOUT = 5.0  # seconds


@dataclass(frozen=True)
class SentinelTarget:
    """What a ``sentinel://...;sentinel://...`` URL names: the sentinels, and the primary's
    password and database (taken from the first URL)."""

    addresses: list[tuple[str, int]]
    password: str | None
    db: int

    @classmethod
    def parse(cls, url: str) -> SentinelTarget:
        parts = [urlsplit(part) for part in url.split(";")]
        first = parts[0]
        path = first.path.strip("/")
        return cls(
            addresses=[(p.hostname or "127.0.0.1", p.port or 26379) for p in parts],
            password=unquote(first.password) if first.password else None,
            db=int(path) if path.isdigit() else 0,
        )


def as_text(value: Any) -> str:
    """A Redis reply (bytes unless the client decodes) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def connect(url: str, settings: Settings, **options: Any) -> redis.Redis:
    """A client for ``url``. Sentinel URLs give a client of the current primary, which asks
    the sentinels again after a failover (connections to the old primary fail, then resolve)."""
    if not is_sentinel(url):
        return redis.Redis.from_url(
            url, **(tls_options(settings) if uses_tls(url) else {}), **options
        )
    target = SentinelTarget.parse(url)
    sentinel_options = {k: v for k, v in options.items() if k.startswith("socket_")}
    sentinel = Sentinel(target.addresses, sentinel_kwargs=sentinel_options, **sentinel_options)  # type: ignore[no-untyped-call]
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        settings.sentinel_master, db=target.db, password=target.password, **options
    )
    return client


@lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    return connect(
        url,
        current_settings(),
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=30,
        retry_on_timeout=True,
    )
