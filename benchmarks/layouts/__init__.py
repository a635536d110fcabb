"""Worker layouts side by side (kit, stock Celery, Dramatiq, RQ): processing, latency, memory."""

from __future__ import annotations
