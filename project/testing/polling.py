"""Waiting on a condition with a deadline, instead of sleeping a fixed time.

A task runs in another thread or process, so what it leaves behind (a result, an archive
record, a counter in Redis) appears some time after ``.delay()`` returns. A fixed ``sleep``
is either too short on a loaded machine or wastes time on an idle one; polling with a
deadline is neither, and its failure says what was last seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["eventually"]

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Call ``probe`` until it returns something truthy; at the deadline, fail with its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last value: {value!r})")
        time.sleep(interval)
