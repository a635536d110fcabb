"""The kit's beat scheduler: redbeat's, with the kit's schedule and one beat at a time.

celery-redbeat keeps the schedule in Redis (so ``kit cron add/rm`` change it at run time and
every beat sees the same next-run times) and lets only the holder of a Redis lock tick: a second
beat started by mistake waits instead of double-firing, and takes over within
``KIT_BEAT_LOCK_TIMEOUT`` seconds when the first dies. celery-once-style file locks would not
cover two hosts; a homegrown lock would duplicate what redbeat does well.
"""

from __future__ import annotations

from typing import Any

from redbeat import RedBeatScheduler

from project import keys
from project.lifecycle.kit import kit_of

__all__ = ["KitScheduler", "beat_config"]


class KitScheduler(RedBeatScheduler):  # type: ignore[misc]
    def setup_schedule(self) -> None:
        # Here, not in the app's configuration: only now are the task modules imported, so
        # the schedule can leave out entries whose task is not installed.
        import beat_schedule

        overrides = kit_of(self.app).settings.beat.overrides
        self.app.conf.beat_schedule = beat_schedule.active_entries(self.app.tasks, overrides)
        super().setup_schedule()


def beat_config(redis_url: str, lock_timeout: int) -> dict[str, Any]:
    return {
        "beat_scheduler": "project.periodic.beat:KitScheduler",
        "redbeat_redis_url": redis_url,
        "redbeat_key_prefix": keys.BEAT_PREFIX,  # redbeat's keys, listed there
        "redbeat_lock_timeout": lock_timeout,
        # Set, even empty: unset, redbeat falls back to broker_transport_options (with a
        # DeprecationWarning; none of the broker's options reach its client either way).
        # A Sentinel deployment sets its own (project.application).
        "redbeat_redis_options": {},
        # The lock is extended at every tick: tick at least five times per lock period.
        "beat_max_loop_interval": max(1, lock_timeout // 5),
    }
