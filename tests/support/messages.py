"""What Redis holds of published messages, for comparing two ways of publishing the same tasks."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["raw_messages"]

#: The two values that must differ between two publishes of one task.
_VARYING = (
    (re.compile(r'"delivery_tag": "[0-9a-f-]{36}"'), '"delivery_tag": "<tag>"'),
    (re.compile(r'"kit_published_at": [0-9.e+-]+'), '"kit_published_at": <time>'),
)


def raw_messages(redis: Any) -> list[tuple[str, str]]:
    """Every message waiting in every queue list, as Redis holds it (list key, JSON), with
    kombu's delivery tag and the kit's publish time replaced by stand-ins."""
    found = []
    for key in sorted(redis.keys("*")):
        if redis.type(key) != "list" or key.startswith("kit:"):
            continue
        for raw in redis.lrange(key, 0, -1):
            for pattern, stand_in in _VARYING:
                raw = pattern.sub(stand_in, raw)
            found.append((key, raw))
    return found
