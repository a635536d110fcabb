"""The Redis client the kit's own modules share (archive, locks, checks).

One client per process and URL: redis-py's pool notices a fork and reconnects in the child, so a
prefork worker's children never share sockets with their parent.
"""

from __future__ import annotations

from functools import lru_cache

import redis

__all__ = ["redis_client"]

SOCKET_TIMEOUT = 10.0  # seconds; a hung Redis fails a call instead of blocking a task forever
CONNECT_TIMEOUT = 5.0  # seconds


@lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        health_check_interval=30,
        retry_on_timeout=True,
    )
