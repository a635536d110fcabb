"""Task counters: buffered per process, written in one pipeline, never lost to a Redis blip.

Counts go to one-minute buckets: each test reads them at the instant it counted them (``now``),
so a minute that turns between the count and the read (a slow restart of Redis on a loaded
machine) does not move them out of the window read.
"""

from __future__ import annotations

import time
from typing import Any

import redis as redis_py

from project.ops import counters as stats
from project.up.redis_server import RedisServer
from tests.support.polling import eventually


def test_counts_reach_redis_in_one_flush_not_one_round_trip_each(
    redis: Any, redis_url: str
) -> None:
    client = redis_py.Redis.from_url(redis_url)
    tally = stats.Tally(lambda: client, interval=3600)  # only explicit flushes here
    now = time.time()
    for _ in range(5):
        tally.add("default", "processed", now=now)
    tally.add("low", "failed", now=now)
    assert redis.keys("kit:stats:*") == []  # buffered, not written per task
    assert tally.flush() == 6
    counts = stats.totals(client, ["default", "low"], 60, now=now)
    assert counts == {
        "default": {"processed": 5, "failed": 0},
        "low": {"processed": 0, "failed": 1},
    }
    assert all(0 < redis.ttl(k) <= stats.RETENTION for k in redis.keys("kit:stats:*"))


def test_the_background_flush_writes_within_its_interval(redis_url: str) -> None:
    client = redis_py.Redis.from_url(redis_url)
    tally = stats.Tally(lambda: client, interval=0.1)
    now = time.time()
    tally.add("default", "processed", now=now)
    eventually(
        lambda: stats.totals(client, ["default"], 60, now=now)["default"]["processed"] == 1, 10
    )


def test_counts_survive_a_failed_flush(private_redis: RedisServer) -> None:
    client = redis_py.Redis.from_url(private_redis.url, socket_timeout=1)
    tally = stats.Tally(lambda: client, interval=3600)
    now = time.time()
    tally.add("default", "processed", now=now)
    private_redis.stop()
    assert tally.flush() == 0  # Redis away: kept
    private_redis.start()
    assert tally.flush() == 1
    assert stats.totals(client, ["default"], 60, now=now)["default"]["processed"] == 1
