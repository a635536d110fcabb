"""Start-up checks that warn about a Redis set up to lose tasks.

Run once when a worker or beat starts. They warn rather than refuse: a managed Redis may hide
``CONFIG`` and ``INFO`` fields, and an operator may have chosen the trade-off knowingly.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from project.broker.connections import redis_client
from project.broker.settings import RedisSettings
from project.broker.urls import redacted
from project.lifecycle.kit import kit_of
from project.lifecycle.middleware import Middleware

__all__ = ["RedisCheck", "check_redis", "redis_warnings"]

logger = logging.getLogger(__name__)


def redis_warnings(client: redis.Redis) -> list[str]:
    """What is unsafe about this Redis for a task queue, one sentence each."""
    warnings: list[str] = []
    memory: dict[str, Any] = client.info("memory")
    policy = memory.get("maxmemory_policy")
    if policy is not None and policy != "noeviction":
        warnings.append(
            f"Redis maxmemory-policy is {policy!r}: under memory pressure Redis will evict "
            "queued tasks silently. Set `maxmemory-policy noeviction` on this server."
        )
    return warnings


def check_redis(settings: RedisSettings) -> None:
    """Log each warning; an unreachable Redis is left to Celery's own reconnection loop."""
    try:
        for warning in redis_warnings(redis_client(settings)):
            logger.warning(warning)
    except redis.RedisError as exc:
        logger.warning("start-up check of Redis at %s skipped: %s", redacted(settings.url), exc)


class RedisCheck(Middleware):
    """Warns at worker and beat start-up about a Redis set up to lose tasks."""

    def worker_init(self, worker: Any) -> None:
        check_redis(kit_of(worker.app).settings.redis)

    def beat_init(self, beat: Any) -> None:
        check_redis(kit_of(beat.app).settings.redis)
