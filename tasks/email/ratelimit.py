"""Sending rate limits: a token bucket per recipient domain (or one for all mail) in Redis.

``KIT_MAIL_RATE_LIMIT=N/m`` allows bursts of ``N`` and ``N`` per minute on average, per domain
(``KIT_MAIL_RATE_LIMIT_SCOPE=domain``: what receiving servers throttle on) or in total
(``global``: what a relay's plan allows). A message to several domains needs a token from each.

A throttled message does not wait in a worker process: the task is retried with
``countdown=wait`` (its message goes back through the broker, a short delay held in the worker's
timer, a long one in Redis), so the slot runs other tasks meanwhile. To avoid a herd of waiting
tasks all coming back at the same moment and all but one waiting again, a throttled message
*reserves* its slot: its token is taken now, the bucket goes below zero, and the message is told
when its turn comes (``kit:mail:slot:<Message-ID>``). Coming back, it is let through on that
reservation without taking another token. So a backlog drains at exactly the configured rate
with one retry per throttled message, however long the backlog.

One Lua script does it all atomically on Redis's clock, so workers on different hosts with
skewed clocks share the buckets fairly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from project import keys

__all__ = ["GLOBAL_SCOPE", "RateLimiter", "Throttled"]

GLOBAL_SCOPE = "*"

# KEYS[1]: the reservation of this message; KEYS[2..]: the buckets.
# ARGV: capacity, period (ms). Returns the milliseconds to wait (0: send now).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local slot = tonumber(redis.call('GET', KEYS[1]))
if slot then
  if slot <= now then
    redis.call('DEL', KEYS[1])
    return 0
  end
  return slot - now
end
local capacity = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local rate = capacity / period
local wait = 0
for i = 2, #KEYS do
  local state = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
  local tokens = tonumber(state[1]) or capacity
  local ts = tonumber(state[2]) or now
  tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate) - 1
  if tokens < 0 then
    wait = math.max(wait, math.ceil(-tokens / rate))
  end
  redis.call('HSET', KEYS[i], 'tokens', tostring(tokens), 'ts', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil(period - tokens / rate) + 1000)
end
if wait > 0 then
  redis.call('SET', KEYS[1], now + wait, 'PX', wait + period + 60000)
end
return wait
"""


class Throttled(Exception):
    """The message must wait ``wait`` seconds for its slot; its token is reserved."""

    def __init__(self, wait: float, scopes: Sequence[str]) -> None:
        self.wait = wait
        self.scopes = tuple(scopes)
        super().__init__(f"rate limited for {wait:.3f}s ({', '.join(scopes)})")


@dataclass(frozen=True)
class RateLimiter:
    client: redis.Redis
    limit: tuple[int, float] | None  # (messages, per seconds); None: unlimited
    scope: str = "domain"

    def scopes(self, domains: Sequence[str]) -> list[str]:
        return [GLOBAL_SCOPE] if self.scope == "global" else sorted(set(domains))

    def acquire(self, message_id: str, domains: Sequence[str]) -> None:
        """Return when the message may be sent now; :class:`Throttled` when it must wait."""
        if self.limit is None:
            return
        count, seconds = self.limit
        scopes = self.scopes(domains)
        bucket_keys = [keys.mail_rate(scope) for scope in scopes]
        wait_ms = int(
            self.client.eval(
                _ACQUIRE,
                1 + len(bucket_keys),
                keys.mail_slot(message_id),
                *bucket_keys,
                count,
                int(seconds * 1000),
            )
        )
        if wait_ms > 0:
            raise Throttled(wait_ms / 1000.0, scopes)
