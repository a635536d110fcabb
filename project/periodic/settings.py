"""Beat: schedule overrides, its lock, and the time zone cron lines are read in."""

from __future__ import annotations

from dataclasses import dataclass, field

from project.config.env import Env
from project.periodic.cron import CronEntry, parse_entries

__all__ = ["BeatSettings"]

DEFAULT_BEAT_LOCK_TIMEOUT = 30  # seconds; a standby beat takes over this long after a crash
DEFAULT_TIMEZONE = "UTC"


@dataclass(frozen=True)
class BeatSettings:
    overrides: dict[str, CronEntry] = field(default_factory=dict)
    lock_timeout: int = DEFAULT_BEAT_LOCK_TIMEOUT  # seconds
    timezone: str = DEFAULT_TIMEZONE

    @classmethod
    def from_env(cls, env: Env) -> BeatSettings:
        return cls(
            overrides=parse_entries("KIT_BEAT_SCHEDULE", env.optional_text("KIT_BEAT_SCHEDULE")),
            lock_timeout=env.integer("KIT_BEAT_LOCK_TIMEOUT", DEFAULT_BEAT_LOCK_TIMEOUT, minimum=5),
            timezone=env.text("KIT_TIMEZONE", DEFAULT_TIMEZONE),
        )
