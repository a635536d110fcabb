"""Redis locks: ``SET key token NX PX ttl``, renewed and released only by their holder.

The token is the holder's identity (a task id, a supervisor's host:pid). Renewal and release
are compare-and-set Lua scripts, so a holder whose lock expired and was taken by someone else
can neither extend nor delete the new holder's lock. The TTL is what frees a lock whose holder
died without releasing it (a SIGKILLed worker): choose it as the longest you are willing to
wait for a dead holder, and renew well inside it while the work goes on.
"""

from __future__ import annotations

import redis

from project.broker.connections import as_text

__all__ = ["RedisLock"]

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""


class RedisLock:
    def __init__(self, client: redis.Redis, key: str, token: str, ttl: float) -> None:
        """``ttl`` in seconds (fractions allowed); at least one millisecond."""
        self.client = client
        self.key = key
        self.token = token
        self.ttl_ms = max(1, int(ttl * 1000))

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return None if value is None else as_text(value)

    def renew(self) -> bool:
        """Extend to a full TTL again, only if still held by this token."""
        return bool(self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_ms))

    def release(self) -> bool:
        """Delete, only if still held by this token; False if it expired or changed hands."""
        return bool(self.client.eval(_RELEASE, 1, self.key, self.token))
