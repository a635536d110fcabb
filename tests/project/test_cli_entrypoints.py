"""`celery -A project worker|beat` work after `pip install -e .`, from any directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.workers import CeleryProcess, WorkerProcess


@pytest.mark.e2e
def test_worker_starts_from_another_directory(tmp_path: Path) -> None:
    from tests.support.tasks import add

    worker = WorkerProcess(cwd=tmp_path)
    try:
        worker.wait_ready()
        assert add.delay(20, 22).get(timeout=30) == 42
        assert "[queues]" in worker.output
        for queue in ("critical", "default", "low"):
            assert f".> {queue}" in worker.output
    finally:
        assert worker.stop() == 0


@pytest.mark.e2e
def test_beat_starts_from_another_directory(tmp_path: Path) -> None:
    beat = CeleryProcess(
        ["beat", "--loglevel=INFO", f"--schedule={tmp_path / 'schedule'}"], cwd=tmp_path
    )
    try:
        # Started means scheduling: the schedule loaded from Redis and the one-beat lock held.
        # (Stopping it mid-import instead tests Python's import lock, not the kit.)
        beat.wait_for("beat: Acquired lock")
    finally:
        beat.stop()
    assert "Traceback" not in beat.output


@pytest.mark.e2e
def test_worker_warns_when_redis_may_evict_tasks(start_worker: Any, redis: Any) -> None:
    redis.config_set("maxmemory-policy", "allkeys-lru")
    try:
        worker = start_worker()
        assert "maxmemory-policy is 'allkeys-lru'" in worker.output
        assert "noeviction" in worker.output
    finally:
        redis.config_set("maxmemory-policy", "noeviction")
