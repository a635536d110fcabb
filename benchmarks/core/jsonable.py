"""What goes into the JSON files: run records and values JSON can hold.

Each run type's ``as_dict`` names its fields once, through :func:`record`, in the order and
under the names the JSON files have always used (so older results still compare).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["json_safe", "record"]


def record(obj: object, *names: str) -> dict[str, object]:
    """``{name: obj.name}`` for each of ``names``, in order: a run's JSON record. ``key=attr``
    records the attribute (or property) ``attr`` under the name ``key``."""
    fields: dict[str, object] = {}
    for name in names:
        key, _, attr = name.partition("=")
        fields[key] = getattr(obj, attr or key)
    return fields


def json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity: None instead, at any depth."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
