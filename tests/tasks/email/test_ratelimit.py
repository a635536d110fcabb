"""The token bucket on a real Redis: bursts, reserved slots, scopes."""

from __future__ import annotations

from typing import Any

import pytest

from project.broker.connections import redis_client
from project.broker.settings import RedisSettings
from tasks.email.ratelimit import RateLimiter, Throttled


def _limiter(redis_url: str, scope: str = "domain") -> RateLimiter:
    return RateLimiter(redis_client(RedisSettings(url=redis_url)), (2, 60.0), scope)


def test_a_burst_passes_then_each_waiter_gets_its_own_later_slot(redis_url: str) -> None:
    limiter = _limiter(redis_url)
    limiter.acquire("<1@k>", ["example.com"])
    limiter.acquire("<2@k>", ["example.com"])
    waits = []
    for mid in ("<3@k>", "<4@k>"):
        with pytest.raises(Throttled) as caught:
            limiter.acquire(mid, ["example.com"])
        waits.append(caught.value.wait)
    # 2 per minute: one token every 30 s; the 4th message's slot is one token after the 3rd's.
    assert 25 < waits[0] <= 30 and 55 < waits[1] <= 60
    assert waits[1] - waits[0] == pytest.approx(30, abs=1)


def test_other_domains_have_their_own_buckets(redis_url: str) -> None:
    limiter = _limiter(redis_url)
    for mid in ("<1@k>", "<2@k>"):
        limiter.acquire(mid, ["example.com"])
    limiter.acquire("<3@k>", ["example.org"])  # does not raise
    with pytest.raises(Throttled) as caught:
        limiter.acquire("<4@k>", ["example.org", "example.com"])
    assert caught.value.scopes == ("example.com", "example.org")


def test_the_global_scope_is_one_bucket(redis_url: str) -> None:
    limiter = _limiter(redis_url, "global")
    limiter.acquire("<1@k>", ["example.com"])
    limiter.acquire("<2@k>", ["example.org"])
    with pytest.raises(Throttled):
        limiter.acquire("<3@k>", ["example.net"])


def test_a_message_whose_slot_came_passes_without_a_new_token(redis: Any, redis_url: str) -> None:
    limiter = _limiter(redis_url)
    for mid in ("<1@k>", "<2@k>"):
        limiter.acquire(mid, ["example.com"])
    with pytest.raises(Throttled):
        limiter.acquire("<3@k>", ["example.com"])
    tokens = redis.hget("kit:mail:rate:example.com", "tokens")
    redis.set("kit:mail:slot:<3@k>", 1)  # its reserved time has come
    limiter.acquire("<3@k>", ["example.com"])  # does not raise
    assert redis.hget("kit:mail:rate:example.com", "tokens") == tokens  # nothing taken
    assert redis.exists("kit:mail:slot:<3@k>") == 0


def test_no_limit_configured_never_throttles(redis: Any, redis_url: str) -> None:
    limiter = RateLimiter(redis_client(RedisSettings(url=redis_url)), None)
    for i in range(50):
        limiter.acquire(f"<{i}@k>", ["example.com"])
    assert redis.keys("kit:mail:*") == []
