"""celery-kit: Asynq-style reliable background tasks on Celery and Redis.

``celery -A project worker`` / ``beat`` / ``flower`` use :data:`app`. The names below are the
public API; everything else is internal.
"""

from __future__ import annotations

from .aggregation import enqueue_grouped
from .archive import Archive, ArchivedTask
from .celery_app import app
from .config import Settings, current_settings, load_settings
from .dedup import ReleasePolicy, enqueue_unique, enqueue_with_id
from .errors import (
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
from .task import KitTask

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
