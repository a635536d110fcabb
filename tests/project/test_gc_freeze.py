"""A worker freezes what start-up built out of the garbage collector's way, and only then."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from project import app
from project.lifecycle.kit import kit_of
from project.testing.workers import in_thread_worker
from tests.support.tasks import frozen_objects


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_a_prefork_workers_tasks_run_with_its_start_up_frozen(start_worker: Any) -> None:
    start_worker(concurrency=2)
    # Each child's count: what it inherited from the main process plus its own start-up
    assert frozen_objects.delay().get(timeout=60) > 10_000


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_kit_gc_freeze_false_freezes_nothing(start_worker: Any) -> None:
    start_worker(concurrency=1, env={"KIT_GC_FREEZE": "false"})
    assert frozen_objects.delay().get(timeout=60) == 0


def test_a_worker_in_a_thread_leaves_the_collector_as_it_found_it() -> None:
    assert gc.get_freeze_count() == 0
    with in_thread_worker(app):
        # frozen at worker_init; the consumer's start (in the worker's thread) freezes again,
        # so the count only grows while it runs
        assert gc.get_freeze_count() > 10_000
        assert frozen_objects.delay().get(timeout=30) > 10_000
    assert gc.get_freeze_count() == 0


def test_the_setting_is_read_from_the_environment() -> None:
    from project.settings import load_settings

    assert load_settings({}).tasks.gc_freeze is True
    assert load_settings({"KIT_GC_FREEZE": "false"}).tasks.gc_freeze is False
    assert kit_of(app).settings.tasks.gc_freeze is True
