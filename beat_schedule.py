"""The cron table: the seed's periodic tasks, as the kit's beat runs them.

Times are in ``KIT_TIMEZONE`` (UTC by default). ``KIT_BEAT_SCHEDULE`` adds, overrides or
disables entries without editing this file, and ``kit cron add/rm`` changes the schedule at run
time. An entry is scheduled only when its task is installed in this deployment, so a beat never
fires messages no worker can run; skipped entries are logged when beat starts.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Mapping
from typing import Any

from project.periodic.cron import CronEntry

__all__ = ["SCHEDULE", "active_entries"]

logger = logging.getLogger(__name__)

SCHEDULE: dict[str, CronEntry] = {
    # Nightly backup of the main database at 02:00.
    "backup:database@02:00": CronEntry(
        "backup:database@02:00", "backup:database", "0 2 * * *", kwargs={"database": "main"}
    ),
    # Hourly clean-up of data older than 30 days.
    "cleanup:old_data@hourly": CronEntry(
        "cleanup:old_data@hourly",
        "cleanup:old_data",
        "0 * * * *",
        kwargs={"retention_days": 30},
    ),
    # Health check every five minutes.
    "health:check@5min": CronEntry("health:check@5min", "health:check", "*/5 * * * *"),
}


def active_entries(
    registered: Container[str], overrides: Mapping[str, CronEntry] | None = None
) -> dict[str, dict[str, Any]]:
    """``beat_schedule`` for Celery: the seed's table merged with ``overrides``, keeping only
    entries whose task is registered."""
    merged = {**SCHEDULE, **(overrides or {})}
    active: dict[str, dict[str, Any]] = {}
    for name, entry in merged.items():
        if not entry.enabled:
            logger.info("beat: entry %s disabled by configuration", name)
        elif entry.task in registered:
            active[name] = entry.beat_entry()
        else:
            logger.info("beat: entry %s skipped, task %s is not installed", name, entry.task)
    return active
