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
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import redis

from .config import Settings, current_settings

__all__ = ["redis_client", "tls_options", "uses_tls"]


def uses_tls(url: str) -> bool:
    return urlsplit(url).scheme == "rediss"


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


@lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    extra = tls_options(current_settings()) if uses_tls(url) else {}
    return redis.Redis.from_url(
        url,
        **extra,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=30,
        retry_on_timeout=True,
    )
