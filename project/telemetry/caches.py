"""The one bounded cache of telemetry's hot paths: values that come back span after span.

The encoder (:mod:`project.telemetry.wire`, :mod:`project.telemetry.encoding`), the redaction
scan (:mod:`project.telemetry.redaction`) and the attempt profiles
(:mod:`project.telemetry.attempts`) each remember what they worked out for a value they will
see again (a task name, a queue, a host, a kind of attempt). A cache is a plain dict, bounded
by clearing it when full: the values in use come back within a span or two, so an LRU's
bookkeeping on every hit would cost more than the occasional rebuild.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["MAX_CACHED", "remember"]

MAX_CACHED = 4096  # entries a cache holds before it is cleared

K = TypeVar("K")
V = TypeVar("V")


def remember(cache: dict[K, V], key: K, value: V) -> V:
    """``value`` kept under ``key`` in ``cache``, cleared first when full; returns ``value``."""
    if len(cache) >= MAX_CACHED:
        cache.clear()
    cache[key] = value
    return value
