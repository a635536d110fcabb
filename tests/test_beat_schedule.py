"""The beat: the seed's table, configuration overrides, on-time firing, one beat at a time."""

from __future__ import annotations

import json
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

import beat_schedule
from project.errors import ConfigError
from project.settings import load_settings
from tests.support.polling import eventually
from tests.support.workers import CeleryProcess

TICK_SCHEDULE = json.dumps({"tick": {"task": "tests.tick", "every": 1, "args": ["beat"]}})
BEAT_ENV = {"KIT_BEAT_SCHEDULE": TICK_SCHEDULE, "KIT_BEAT_LOCK_TIMEOUT": "5"}


def test_seed_table_has_its_three_entries_in_cron_form() -> None:
    entries = {e.task: e for e in beat_schedule.SCHEDULE.values()}
    assert entries["backup:database"].cron == "0 2 * * *"
    assert entries["backup:database"].kwargs == {"database": "main"}
    assert entries["cleanup:old_data"].cron == "0 * * * *"
    assert entries["cleanup:old_data"].kwargs == {"retention_days": 30}
    assert entries["health:check"].cron == "*/5 * * * *"


def test_entries_whose_task_is_not_installed_are_left_out() -> None:
    active = beat_schedule.active_entries({"health:check"})
    assert list(active) == ["health:check@5min"]


def test_configuration_overrides_adds_and_disables_entries() -> None:
    overrides = load_settings(
        {
            "KIT_BEAT_SCHEDULE": json.dumps(
                {
                    "health:check@5min": {"task": "health:check", "cron": "*/1 * * * *"},
                    "cleanup:old_data@hourly": {"enabled": False},
                    "report": {"task": "report:build", "cron": "30 6 * * 1", "queue": "low"},
                }
            )
        }
    ).beat.overrides
    registered = {"health:check", "cleanup:old_data", "report:build"}
    active = beat_schedule.active_entries(registered, overrides)
    assert sorted(active) == ["health:check@5min", "report"]
    assert active["report"]["options"] == {"queue": "low"}
    assert str(active["health:check@5min"]["schedule"]).startswith("<crontab: */1 *")


@pytest.mark.parametrize(
    "spec",
    [
        {"bad": {"task": "t", "cron": "61 * * * *"}},
        {"bad": {"task": "t", "cron": "* * *"}},
        {"bad": {"cron": "* * * * *"}},
        {"bad": {"task": "t", "every": -1}},
    ],
)
def test_malformed_entry_stops_start_up_naming_it(spec: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"KIT_BEAT_SCHEDULE=.*'bad'"):
        load_settings({"KIT_BEAT_SCHEDULE": json.dumps(spec)})


def _beat(tmp_path: Path, name: str) -> CeleryProcess:
    return CeleryProcess(
        ["beat", "--loglevel=INFO", f"--schedule={tmp_path / name}"],
        env=BEAT_ENV,
        cwd=tmp_path,
    )


def _ticks(redis: Any) -> list[float]:
    return [float(t) for t in redis.lrange("test:ticks:beat", 0, -1)]


def _fired(redis: Any) -> list[float]:
    return [float(t) for t in redis.lrange("test:ticks:beat:published", 0, -1)]


@pytest.mark.e2e
def test_one_beat_fires_on_time_a_second_waits_and_takes_over(
    tmp_path: Path, start_worker: Any, redis: Any
) -> None:
    start_worker(concurrency=1, env=BEAT_ENV)
    first = _beat(tmp_path, "first")
    second: CeleryProcess | None = None
    try:
        first.wait_for("beat: Acquired lock")
        eventually(lambda: len(_fired(redis)) >= 4, 30)
        # When beat fired (each message's publish stamp), not when a loaded worker ran it.
        fired = _fired(redis)
        gaps = [b - a for a, b in pairwise(fired)]
        assert all(0.5 <= gap <= 1.6 for gap in gaps[:3]), gaps

        second = _beat(tmp_path, "second")
        second.wait_for("beat: Starting...")
        before = len(_ticks(redis))
        time.sleep(4)  # a window of four periods: one beat fires ~4 times, two would fire ~8
        assert len(_ticks(redis)) - before <= 5
        assert "Acquired lock" not in second.output

        first.kill()
        killed_at = time.time()
        second.wait_for("beat: Acquired lock", timeout=30)
        eventually(lambda: any(t > killed_at + 0.5 for t in _ticks(redis)), 30)
        assert min(t for t in _ticks(redis) if t > killed_at) - killed_at <= 5 + 2
    finally:
        first.kill()
        if second is not None:
            second.kill()
