"""`kit cron`: the schedule in Redis listed, changed at run time, and errors for people."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from project.up.redis_server import free_port
from tests.support.cli import run_kit
from tests.support.polling import eventually
from tests.support.workers import CeleryProcess


def kit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_kit(*args, env=env, timeout=60)


def test_add_list_and_remove_an_entry(redis: Any) -> None:
    added = kit(
        "cron",
        "add",
        "nightly-report",
        "--task",
        "backup:database",
        "--cron",
        "30 6 * * 1",
        "--kwargs",
        '{"database": "main"}',
        "--queue",
        "low",
    )
    assert added.returncode == 0, added.stderr
    listed = json.loads(kit("cron", "ls", "--json").stdout)
    (row,) = [r for r in listed if r["name"] == "nightly-report"]
    assert (row["task"], row["kwargs"]) == ("backup:database", {"database": "main"})
    assert row["schedule"].startswith("30 6 * * 1") and row["next_run"]
    assert redis.exists("kit:beat:nightly-report")

    assert kit("cron", "rm", "nightly-report").returncode == 0
    assert not redis.exists("kit:beat:nightly-report")
    assert json.loads(kit("cron", "ls", "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "x", "--task", "t", "--cron", "61 * * * *"], "entry 'x': '61 * * * *' is not"),
        (["add", "x", "--task", "t"], "exactly one of --cron and --every"),
        (["add", "x", "--task", "t", "--every", "5", "--args", "{"], "must be JSON"),
        (["rm", "missing"], "no schedule entry named 'missing'"),
    ],
)
def test_mistakes_get_one_line_and_a_non_zero_exit(args: list[str], message: str) -> None:
    done = kit("cron", *args)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def _refused(done: subprocess.CompletedProcess[str], message: str) -> None:
    assert done.returncode == 1, done.stdout
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.e2e
def test_add_refuses_a_task_no_running_worker_has(start_worker: Any, redis: Any) -> None:
    # This worker runs the test tasks and the e-mail catalog only: the catalog's health:check
    # is not among them, though the kit command's own process (whole catalog) defines it.
    start_worker(concurrency=1, env={"KIT_CATALOG": "tasks.email.tasks"})
    done = kit("cron", "add", "checks", "--task", "health:check", "--every", "60")
    _refused(done, "no running worker has task 'health:check'")
    _refused(kit("cron", "add", "typo", "--task", "tests.tikc", "--every", "60"), "tests.tikc")
    assert not redis.exists("kit:beat:checks") and not redis.exists("kit:beat:typo")
    added = kit("cron", "add", "ticks", "--task", "tests.tick", "--every", "60")
    assert added.returncode == 0, added.stderr
    assert redis.exists("kit:beat:ticks")


def test_without_a_worker_add_checks_the_name_against_the_configured_modules(redis: Any) -> None:
    _refused(
        kit("cron", "add", "typo", "--task", "health:chek", "--every", "60"),
        "task 'health:chek' is not defined",
    )
    assert not redis.exists("kit:beat:typo")
    added = kit("cron", "add", "checks", "--task", "health:check", "--every", "60")
    assert added.returncode == 0, added.stderr
    assert "no worker answered" in added.stdout
    assert redis.exists("kit:beat:checks")


def test_unreachable_redis_is_one_line_not_a_traceback() -> None:
    done = kit("cron", "ls", env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert done.returncode == 1
    assert "is unreachable" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.e2e
def test_an_entry_added_at_run_time_fires_without_restarting_beat(
    tmp_path: Path, start_worker: Any, redis: Any
) -> None:
    start_worker(concurrency=1)
    beat = CeleryProcess(
        ["beat", "--loglevel=INFO", f"--schedule={tmp_path / 'beat'}"],
        env={"KIT_BEAT_LOCK_TIMEOUT": "5"},
        cwd=tmp_path,
    )
    try:
        beat.wait_for("beat: Acquired lock")
        assert (
            kit(
                "cron", "add", "live", "--task", "tests.tick", "--every", "1", "--args", '["live"]'
            ).returncode
            == 0
        )
        eventually(lambda: redis.llen("test:ticks:live") >= 2, 30)
        rows = json.loads(kit("cron", "ls", "--json").stdout)
        last_run = next(r for r in rows if r["name"] == "live")["last_run"]
        assert last_run is not None
    finally:
        beat.kill()
