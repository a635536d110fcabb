"""Cron lines and schedule entries: parsed once, with errors that name the entry.

Entries come from three places, later ones winning: the project's table in ``beat_schedule.py``,
``KIT_BEAT_SCHEDULE`` (JSON, read at start-up), and ``kit cron add/rm`` at run time (kept in
Redis by the beat scheduler, :mod:`project.periodic.beat`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery.schedules import crontab

from project.errors import ConfigError

__all__ = ["CronEntry", "parse_cron", "parse_entries"]

_ACCEPTS = (
    'a JSON object of entries, e.g. {"health:check@5min": {"cron": "*/5 * * * *", '
    '"task": "health:check", "kwargs": {}}} ("every": seconds instead of "cron" for short '
    'intervals); an entry with "enabled": false removes one'
)


def parse_cron(line: str) -> crontab:
    """``minute hour day-of-month month day-of-week``; raises ValueError with the reason."""
    fields = line.split()
    if len(fields) != 5:
        raise ValueError(f"{line!r} has {len(fields)} fields; a cron line has 5")
    minute, hour, day_of_month, month, day_of_week = fields
    try:
        return crontab(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month,
            day_of_week=day_of_week,
        )
    except (ValueError, TypeError, IndexError) as exc:
        raise ValueError(f"{line!r} is not a valid cron line: {exc}") from None


@dataclass(frozen=True)
class CronEntry:
    """A cron line, or ``every`` N seconds for intervals finer than a minute."""

    name: str
    task: str
    cron: str = ""
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str | None = None
    enabled: bool = True
    every: float | None = None

    def schedule(self) -> Any:
        if self.every is not None:
            return timedelta(seconds=self.every)
        return parse_cron(self.cron)

    def beat_entry(self) -> dict[str, Any]:
        """The entry in Celery's ``beat_schedule`` form."""
        entry: dict[str, Any] = {
            "task": self.task,
            "schedule": self.schedule(),
            "args": list(self.args),
            "kwargs": dict(self.kwargs),
        }
        if self.queue:
            entry["options"] = {"queue": self.queue}
        return entry


def parse_entries(variable: str, raw: str | None) -> dict[str, CronEntry]:
    """Entries from a JSON object; ConfigError naming the variable and the bad entry."""
    if raw is None or not raw.strip():
        return {}
    try:
        document = json.loads(raw)
    except ValueError:
        raise ConfigError(variable, raw, _ACCEPTS) from None
    if not isinstance(document, dict):
        raise ConfigError(variable, raw, _ACCEPTS)
    entries: dict[str, CronEntry] = {}
    for name, spec in document.items():
        if not isinstance(spec, dict):
            raise ConfigError(
                variable,
                raw,
                f"a JSON object of entries, each an object (not {name!r}); " + _ACCEPTS,
            )
        if spec.get("enabled", True) is False:
            entries[name] = CronEntry(name, "", "", enabled=False)
            continue
        try:
            every = spec.get("every")
            entry = CronEntry(
                name=name,
                task=str(spec["task"]),
                cron="" if every is not None else str(spec["cron"]),
                args=list(spec.get("args", [])),
                kwargs=dict(spec.get("kwargs", {})),
                queue=spec.get("queue"),
                every=None if every is None else float(every),
            )
            if entry.every is not None and entry.every <= 0:
                raise ValueError(f"every must be a positive number of seconds, not {every!r}")
            entry.schedule()
        except KeyError as missing:
            raise ConfigError(
                variable,
                raw,
                f"entries with a task and a cron line or every ({name!r} lacks {missing})",
            ) from None
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                variable, raw, f"entries with valid cron lines (entry {name!r}: {exc})"
            ) from None
        entries[name] = entry
    return entries
