"""Maintenance tasks through a real worker: restorable backups, exact clean-up, health breaches."""

from __future__ import annotations

import dataclasses
import gzip
import os
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import project.config
from project.broker.connections import redis_client
from project.broker.settings import RedisSettings
from project.errors import ValidationError
from project.lifecycle.kit import default_kit
from project.retries.archive import ArchivedTask
from tasks.maintenance.settings import MaintenanceSettings


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[MaintenanceSettings]:
    """Settings of this test: a backup directory, a clean-up root, an SQLite database."""
    database = tmp_path / "app.sqlite3"
    patched = MaintenanceSettings(
        databases={"main": f"sqlite:///{database}"},
        backup_dir=str(tmp_path / "backups"),
        backup_keep=2,
        cleanup_dirs=(str(tmp_path / "outputs"),),
    )
    with project.config.override(patched):
        yield patched


def _make_sqlite(path: Path, rows: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO users (name) VALUES (?)", [(f"u{i}",) for i in range(rows)])


def _rows(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as db:
        return list(db.execute("SELECT id, name FROM users ORDER BY id"))


def test_sqlite_backup_restores_to_the_same_rows(
    celery_worker: Any, settings: MaintenanceSettings, tmp_path: Path
) -> None:
    from tasks.maintenance.tasks import backup_database_task

    database = tmp_path / "app.sqlite3"
    _make_sqlite(database, 250)
    report = backup_database_task.delay("main").get(timeout=60)
    assert report["kind"] == "sqlite" and report["bytes"] > 0
    restored = tmp_path / "restored.sqlite3"
    with gzip.open(report["path"], "rb") as src, restored.open("wb") as out:
        shutil.copyfileobj(src, out)
    assert _rows(restored) == _rows(database)


def test_backups_are_rotated_keeping_the_newest(
    celery_worker: Any, settings: MaintenanceSettings, tmp_path: Path
) -> None:
    from tasks.maintenance.tasks import backup_database_task

    _make_sqlite(tmp_path / "app.sqlite3", 3)
    paths = []
    for _ in range(3):
        paths.append(backup_database_task.delay("main").get(timeout=60)["path"])
        time.sleep(1.05)  # backups are named by the second
    kept = sorted(str(p) for p in Path(settings.backup_dir).iterdir())
    assert kept == sorted(paths[-2:])


def test_unknown_database_is_a_permanent_error(
    celery_worker: Any, settings: MaintenanceSettings
) -> None:
    from tasks.maintenance.tasks import backup_database_task

    result = backup_database_task.delay("reports")
    with pytest.raises(ValidationError, match="unknown database 'reports'"):
        result.get(timeout=30)


def _postgres_url() -> str | None:
    if not shutil.which("pg_dump") or not shutil.which("psql"):
        return None
    probe = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-Atc", "select 1"],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return "postgresql://postgres@127.0.0.1:5432" if probe.returncode == 0 else None


def test_postgresql_backup_restores_to_the_same_rows(
    celery_worker: Any, settings: MaintenanceSettings
) -> None:
    from tasks.maintenance.tasks import backup_database_task

    server = _postgres_url()
    if server is None:
        pytest.skip("no PostgreSQL server with pg_dump on this machine")
    name = f"kit_{uuid.uuid4().hex[:8]}"
    restored = f"{name}_restored"

    def psql(db: str, sql: str) -> str:
        done = subprocess.run(
            ["psql", f"{server}/{db}", "-v", "ON_ERROR_STOP=1", "-Atc", sql],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    psql("postgres", f"CREATE DATABASE {name}")
    psql("postgres", f"CREATE DATABASE {restored}")
    try:
        psql(name, "CREATE TABLE items (id serial primary key, label text)")
        psql(name, "INSERT INTO items (label) SELECT 'item ' || g FROM generate_series(1, 300) g")
        postgres = dataclasses.replace(settings, databases={"main": f"{server}/{name}"})
        with project.config.override(postgres):
            report = backup_database_task.delay("main").get(timeout=120)
        assert report["kind"] == "postgresql"
        subprocess.run(
            ["pg_restore", "--no-owner", "-d", f"{server}/{restored}", report["path"]],
            check=True,
            capture_output=True,
            timeout=120,
        )
        query = "SELECT id, label FROM items ORDER BY id"
        assert psql(restored, query) == psql(name, query)
    finally:
        psql("postgres", f"DROP DATABASE IF EXISTS {name}")
        psql("postgres", f"DROP DATABASE IF EXISTS {restored}")


def test_cleanup_removes_exactly_the_old_files_and_records(
    celery_worker: Any, settings: MaintenanceSettings, tmp_path: Path
) -> None:
    from tasks.maintenance.tasks import cleanup_old_data

    outputs = Path(settings.cleanup_dirs[0])
    old_day = time.time() - 40 * 86_400
    old = [outputs / "2024" / "a.jpg", outputs / "b.webp", Path(settings.backup_dir) / "x.gz"]
    new = [outputs / "2026" / "c.jpg", outputs / "d.png"]
    for path in old + new:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 10)
    for path in old:
        os.utime(path, (old_day, old_day))
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("keep")
    os.utime(outside, (old_day, old_day))
    (outputs / "link-out").symlink_to(outside)
    os.utime(outputs / "link-out", (old_day, old_day), follow_symlinks=False)

    archive = default_kit().archive()
    archive.add(ArchivedTask("old", "t", "permanent", "E", "e", archived_at=old_day))
    archive.add(ArchivedTask("new", "t", "permanent", "E", "e"))

    report = cleanup_old_data.delay(retention_days=30).get(timeout=60)
    assert report["files"] == 4  # three old files and the old symlink itself
    assert report["bytes"] == 30
    assert report["archived_records"] == 1
    assert all(not p.exists() for p in old)
    assert all(p.exists() for p in new)
    assert outside.read_text() == "keep"  # a link's target outside the roots is never touched
    assert not (outputs / "2024").exists()  # emptied directories go too
    assert archive.get("old") is None and archive.get("new") is not None


def test_cleanup_refuses_a_retention_below_one_day(celery_worker: Any) -> None:
    from tasks.maintenance.tasks import cleanup_old_data

    with pytest.raises(ValidationError, match="at least 1"):
        cleanup_old_data.delay(retention_days=0).get(timeout=30)


@pytest.mark.e2e
def test_health_check_is_healthy_with_a_worker_and_idle_queues(start_worker: Any) -> None:
    from tasks.maintenance.tasks import health_check

    start_worker(concurrency=1)
    report = health_check.delay().get(timeout=30)
    assert report["healthy"], report["breaches"]
    assert report["workers"] >= 1 and report["redis_up"]


@pytest.mark.e2e
def test_health_check_reports_each_threshold_breach(start_worker: Any, redis: Any) -> None:
    from project.ops import counters as stats
    from tasks.maintenance.tasks import health_check

    client = default_kit().redis
    for _ in range(8):
        redis.lpush("low", "{}")  # a backlog in `low`, which this worker does not consume
    for _ in range(18):
        stats.record(client, "default", "processed")
    for _ in range(2):  # 10 % failed, of the 20 finished tasks a rate needs
        stats.record(client, "default", "failed")
    start_worker(concurrency=1, queues=["default"], env={"KIT_ALERT_BACKLOG": "5"})

    report = health_check.delay().get(timeout=30)
    checks = {b["check"] for b in report["breaches"]}
    assert checks == {"backlog", "failure_rate"}
    assert report["backlog"]["low"] == 8
    assert report["failure_rate"] == pytest.approx(0.1)


def test_health_check_reports_no_workers_and_an_unreachable_redis(tmp_path: Path) -> None:
    from project.up.redis_server import RedisServer
    from tasks.maintenance.health import check_health

    settings = MaintenanceSettings()
    queues = ["critical", "default", "low"]
    server = RedisServer(tmp_path / "gone").start()
    client = redis_client(RedisSettings(url=server.url))
    app_for_server = _app_for(server.url)
    report = check_health(app_for_server, client, queues, settings, ping_timeout=0.5)
    assert [b["check"] for b in report.breaches] == ["workers"]
    server.kill()
    report = check_health(app_for_server, client, queues, settings, ping_timeout=0.5)
    assert [b["check"] for b in report.breaches] == ["redis"]
    assert not report.redis_up


def _app_for(url: str) -> Any:
    from project.application import create_app
    from project.settings import load_settings

    return create_app(load_settings({"REDIS_URL": url}))
