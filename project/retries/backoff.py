"""The retry policy: which errors are transient, and how long to wait before the next attempt.

Only errors known to be transient are retried. Anything else (a bug, a ``KeyError`` on a bad
payload, a ``PermanentError``) fails at once and is archived with its traceback: retrying a
deterministic failure only delays the operator's fix, and the archive lets them re-run it after.
"""

from __future__ import annotations

import random

import kombu.exceptions
import redis.exceptions

from project.errors import TransientError

__all__ = ["TRANSIENT_ERRORS", "backoff_delay"]

#: Retried by default. Task classes may extend this with their own (``transient_errors``).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TransientError,
    ConnectionError,  # refused, reset, aborted: the peer may be back soon
    TimeoutError,  # includes socket.timeout
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
)


def backoff_delay(
    retries: int,
    *,
    base: float,
    cap: float,
    jitter: float,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``retries + 1``.

    Exponential (``base * 2 ** retries``), capped at ``cap``, with "equal jitter": the delay is
    drawn from ``[d * (1 - jitter), d]``. Unlike Celery's full jitter (``[0, d]``), a retry never
    comes back almost at once, and with ``jitter <= 0.5`` successive delays never shrink, while
    retries of many tasks that failed together still spread out instead of stampeding.
    """
    exponent = min(retries, 64)  # 2**64 seconds is past any cap; avoids float overflow
    delay = min(cap, base * (2.0**exponent))
    draw = (rng or random).random()
    return delay * (1.0 - jitter * draw)
