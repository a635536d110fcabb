"""celery-kit: Asynq-style reliable background tasks on Celery and Redis.

``celery -A project worker`` / ``beat`` / ``flower`` use :data:`app`. The names below are the
public API; everything else is internal.
"""

from __future__ import annotations

from project.application import app
from project.config import Settings, current_settings, load_settings
from project.enqueue.aggregation import enqueue_grouped
from project.enqueue.dedup import ReleasePolicy, enqueue_unique, enqueue_with_id
from project.errors import (
    AlreadyRunningError,
    ConfigError,
    DuplicateTaskError,
    KitError,
    PermanentError,
    RedisUnavailableError,
    TaskError,
    TaskIdConflictError,
    TransientError,
    ValidationError,
)
from project.lifecycle.task import KitTask
from project.retries.archive import Archive, ArchivedTask

__all__ = [
    "AlreadyRunningError",
    "Archive",
    "ArchivedTask",
    "ConfigError",
    "DuplicateTaskError",
    "KitError",
    "KitTask",
    "PermanentError",
    "RedisUnavailableError",
    "ReleasePolicy",
    "Settings",
    "TaskError",
    "TaskIdConflictError",
    "TransientError",
    "ValidationError",
    "app",
    "current_settings",
    "enqueue_grouped",
    "enqueue_unique",
    "enqueue_with_id",
    "load_settings",
]

import tasks as _catalog  # noqa: F401 - registers the task catalog on `app`
