"""The maintenance tasks' settings: databases to back up, where to, what to clean, alert levels."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from project.broker.urls import redacted
from project.config.env import Env
from project.errors import ConfigError

__all__ = ["MaintenanceSettings"]

DEFAULT_BACKUP_DIR = "var/backups"
DEFAULT_BACKUP_KEEP = 7  # newest backups kept per database
# The thresholds of deploy/prometheus/alerts.yml, so the kit's own check agrees with the alerts.
DEFAULT_ALERT_BACKLOG = 10_000  # messages waiting in one queue
DEFAULT_ALERT_FAILURE_RATE = 0.05  # failed / (processed + failed)
# ...counted once this many tasks finished in the window (the alert rule's `>= 20` in 5 m):
# 1 failure in 3 tasks is not a rate.
DEFAULT_ALERT_MIN_FINISHED = 20
DEFAULT_HEALTH_WINDOW = 300  # seconds of task counters the failure rate is computed over


@dataclass(frozen=True)
class MaintenanceSettings:
    """What ``health:check`` compares with, then what ``backup:database`` and
    ``cleanup:old_data`` work on."""

    alert_backlog: int = DEFAULT_ALERT_BACKLOG  # messages
    alert_failure_rate: float = DEFAULT_ALERT_FAILURE_RATE  # fraction
    alert_min_finished: int = DEFAULT_ALERT_MIN_FINISHED  # tasks finished in the window
    health_window: int = DEFAULT_HEALTH_WINDOW  # seconds
    databases: dict[str, str] = field(default_factory=dict)  # name -> URL ("main": DATABASE_URL)
    backup_dir: str = DEFAULT_BACKUP_DIR
    backup_keep: int = DEFAULT_BACKUP_KEEP
    cleanup_dirs: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Env) -> MaintenanceSettings:
        return cls(
            alert_backlog=env.integer("KIT_ALERT_BACKLOG", DEFAULT_ALERT_BACKLOG, minimum=1),
            alert_failure_rate=env.number(
                "KIT_ALERT_FAILURE_RATE", DEFAULT_ALERT_FAILURE_RATE, minimum=0.0, maximum=1.0
            ),
            alert_min_finished=env.integer(
                "KIT_ALERT_MIN_FINISHED", DEFAULT_ALERT_MIN_FINISHED, minimum=1
            ),
            health_window=env.integer("KIT_HEALTH_WINDOW", DEFAULT_HEALTH_WINDOW, minimum=60),
            databases=_databases(env),
            backup_dir=env.text("KIT_BACKUP_DIR", DEFAULT_BACKUP_DIR),
            backup_keep=env.integer("KIT_BACKUP_KEEP", DEFAULT_BACKUP_KEEP, minimum=1),
            cleanup_dirs=env.paths("KIT_CLEANUP_DIRS"),
        )


_DATABASE_ACCEPTS = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://user@host/db"
)


def _databases(env: Env) -> dict[str, str]:
    """``DATABASE_URL`` is the database named "main"; ``DATABASE_URL_<NAME>`` names others."""
    found: dict[str, str] = {}
    for variable in sorted(n for n in env.names_with_prefix("DATABASE_URL")):
        url = env.optional_text(variable)
        if url is None:
            continue
        scheme = urlsplit(url).scheme
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ConfigError(variable, redacted(url), _DATABASE_ACCEPTS)
        name = variable.removeprefix("DATABASE_URL").lstrip("_").lower() or "main"
        found[name] = url
    return found
