"""Maintenance tasks, fired by the beat schedule (``beat_schedule.py``).

Thin tasks: read configuration, call :mod:`tasks.maintenance`, return a JSON report. Their
arguments go through the catalog's parser (:class:`tasks.arguments.Arguments`), at enqueue and
again in the worker, like the other catalogs'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from project import KitTask, kit_task
from project.config import current
from project.errors import ValidationError
from tasks.arguments import Arguments
from tasks.maintenance.backup import backup_database
from tasks.maintenance.cleanup import (
    CleanupReport,
    cutoff_for,
    remove_old_archive_records,
    remove_old_files,
)
from tasks.maintenance.health import check_health
from tasks.maintenance.settings import MaintenanceSettings

__all__ = ["backup_database_task", "cleanup_old_data", "health_check"]


@kit_task(name="backup:database", default_queue="low", max_retries=3)
def backup_database_task(database: str = "main") -> dict[str, object]:
    settings = current(MaintenanceSettings)
    url = settings.databases.get(database)
    if url is None:
        known = ", ".join(sorted(settings.databases)) or "none: set DATABASE_URL"
        raise ValidationError(f"unknown database {database!r} (configured: {known})")
    result = backup_database(database, url, Path(settings.backup_dir), settings.backup_keep)
    return result.as_dict()


CLEANUP = "cleanup:old_data"
DEFAULT_RETENTION_DAYS = 30


def _retention(retention_days: Any) -> float:
    """``retention_days`` (unset: the default), or ValidationError."""
    args = Arguments(CLEANUP, {"retention_days": retention_days})
    return args.number(
        "retention_days", DEFAULT_RETENTION_DAYS, at_least=1, kind="a number of days"
    )


class CleanupTask(KitTask):
    def check_arguments(self, args: Any, kwargs: Any, options: dict[str, Any]) -> None:
        # A wrong arity is Celery's TypeError (task typing); only the value is checked here.
        _retention(args[0] if args else (kwargs or {}).get("retention_days"))


@kit_task(name=CLEANUP, base=CleanupTask, bind=True, default_queue="low")
def cleanup_old_data(
    self: KitTask, retention_days: float = DEFAULT_RETENTION_DAYS
) -> dict[str, object]:
    days = _retention(retention_days)  # again: a message may come from anywhere
    settings = current(MaintenanceSettings)
    cutoff = cutoff_for(days)
    report = CleanupReport()
    for root in dict.fromkeys([settings.backup_dir, *settings.cleanup_dirs]):
        remove_old_files(Path(root).resolve(), cutoff, report)
    archive = self.kit.archive()
    report.archived_records = remove_old_archive_records(archive, cutoff)
    return report.as_dict()


@kit_task(name="health:check", base=KitTask, bind=True)
def health_check(self: KitTask) -> dict[str, Any]:
    kit = self.kit
    queues = list(kit.settings.broker.queue_weights)
    return check_health(self.app, kit.redis, queues, current(MaintenanceSettings)).as_dict()
