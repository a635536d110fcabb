"""celery-kit: Asynq-style reliable background tasks on Celery and Redis.

``celery -A project worker`` / ``beat`` / ``flower`` use :data:`app`, the app of this process's
settings (``create_app(current_settings())``), made on first use: importing ``project`` creates
no app, reads no environment variable and connects no Celery signal. The names below are the
public API; everything else is internal.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from project.application import create_app
from project.enqueue.aggregation import enqueue_grouped
from project.enqueue.dedup import ReleasePolicy, enqueue_unique, enqueue_with_id
from project.errors import (
    AlreadyRunningError,
    ConfigError,
    DuplicateTaskError,
    KitError,
    NotAKitAppError,
    PermanentError,
    RedisPoolTimeoutError,
    RedisUnavailableError,
    TaskError,
    TaskIdConflictError,
    TransientError,
    ValidationError,
)
from project.lifecycle.catalog import kit_task
from project.lifecycle.kit import Kit, kit_of
from project.lifecycle.middleware import Middleware
from project.lifecycle.task import KitTask
from project.retries.archive import Archive, ArchivedTask
from project.settings import Settings, current_settings, load_settings

if TYPE_CHECKING:
    from celery import Celery

    app: Celery

__all__ = [
    "AlreadyRunningError",
    "Archive",
    "ArchivedTask",
    "ConfigError",
    "DuplicateTaskError",
    "Kit",
    "KitError",
    "KitTask",
    "Middleware",
    "NotAKitAppError",
    "PermanentError",
    "RedisPoolTimeoutError",
    "RedisUnavailableError",
    "ReleasePolicy",
    "Settings",
    "TaskError",
    "TaskIdConflictError",
    "TransientError",
    "ValidationError",
    "app",
    "create_app",
    "current_settings",
    "enqueue_grouped",
    "enqueue_unique",
    "enqueue_with_id",
    "kit_of",
    "kit_task",
    "load_settings",
]


_app_lock = threading.Lock()


def __getattr__(name: str) -> Any:
    """``project.app``: made on first use, from this process's environment."""
    if name != "app":
        raise AttributeError(f"module 'project' has no attribute {name!r}")
    with _app_lock:
        made = globals().get("app")
        if made is None:
            made = create_app(current_settings())
            globals()["app"] = made
    return made
