"""Run-time changes to the beat schedule kept in Redis (``kit cron``), like Asynq's
PeriodicTaskManager. The beat picks changes up at its next tick, without a restart.

Entries from ``beat_schedule.py`` and ``KIT_BEAT_SCHEDULE`` are re-installed whenever beat
starts; to remove one of those for good, disable it in ``KIT_BEAT_SCHEDULE``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from redbeat.schedulers import RedBeatSchedulerEntry, ensure_conf, get_redis

from project.broker.connections import as_text
from project.periodic.cron import CronEntry

__all__ = ["ScheduleRow", "add_entry", "list_entries", "remove_entry"]


@dataclass(frozen=True)
class ScheduleRow:
    name: str
    task: str
    schedule: str
    args: list[Any]
    kwargs: dict[str, Any]
    next_run: datetime | None
    last_run: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the times as ISO 8601."""
        row = asdict(self)
        for moment in ("next_run", "last_run"):
            row[moment] = row[moment].isoformat() if row[moment] else None
        return row


def _describe(schedule: Any) -> str:
    text = str(schedule)
    return text.removeprefix("<crontab: ").removesuffix(">") if "crontab" in text else text


def list_entries(app: Celery) -> list[ScheduleRow]:
    ensure_conf(app)
    client = get_redis(app)
    rows = []
    for raw_key in client.zrange(app.redbeat_conf.schedule_key, 0, -1):
        key = as_text(raw_key)
        try:
            entry = RedBeatSchedulerEntry.from_key(key, app=app)
        except KeyError:
            continue  # removed between the listing and the read
        rows.append(
            ScheduleRow(
                name=entry.name,
                task=entry.task,
                schedule=_describe(entry.schedule),
                args=list(entry.args or ()),
                kwargs=dict(entry.kwargs or {}),
                next_run=entry.due_at,
                last_run=entry.last_run_at,
            )
        )
    return sorted(rows, key=lambda row: row.name)


def add_entry(app: Celery, entry: CronEntry) -> None:
    ensure_conf(app)
    options = {"queue": entry.queue} if entry.queue else {}
    saved = RedBeatSchedulerEntry(
        name=entry.name,
        task=entry.task,
        schedule=entry.schedule(),
        args=list(entry.args),
        kwargs=dict(entry.kwargs),
        options=options,
        app=app,
    ).save()
    # A new entry has no last run in Redis, and redbeat would take "now" as its last run at
    # every tick: an interval entry would never come due. Record one, as if it last ran one
    # period ago (interval: due at once) or now (cron: at its next matching minute).
    now = app.now()
    saved.reschedule(last_run_at=now - timedelta(seconds=entry.every) if entry.every else now)


def remove_entry(app: Celery, name: str) -> bool:
    ensure_conf(app)
    key = RedBeatSchedulerEntry.generate_key(app, name)
    try:
        RedBeatSchedulerEntry.from_key(key, app=app).delete()
    except KeyError:
        return False
    return True
