"""Many pending messages, fast: the shape of the app's own, copied under new ids."""

from __future__ import annotations

import json
from typing import Any

from project.broker.queues import queue_keys

__all__ = ["fill_pending"]


def fill_pending(redis: Any, n: int) -> None:
    """``n`` pending messages ``bulk-0`` ... in ``default``, shaped exactly like the app's own
    (one published, then copied with new ids), pushed in pipelined batches."""
    from tests.support.tasks import count

    count.delay("template")
    (key,) = [k for k in queue_keys("default") if redis.llen(k)]  # the default priority's
    template = redis.lpop(key)
    old_id = json.loads(template)["headers"]["id"]
    for start in range(0, n, 10_000):
        with redis.pipeline(transaction=False) as pipe:
            for i in range(start, min(n, start + 10_000)):
                pipe.lpush(key, template.replace(old_id, f"bulk-{i}"))
            pipe.execute()
