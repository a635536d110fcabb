"""Producer-side enqueue rates, no worker: ``enqueue`` and ``bulk``."""

from __future__ import annotations
