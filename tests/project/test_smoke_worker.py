from __future__ import annotations

from typing import Any


def test_in_thread_worker_runs_a_task(celery_worker: Any) -> None:
    from tests.support.tasks import add

    assert add.delay(2, 3).get(timeout=10) == 5


def test_subprocess_worker_runs_a_task(start_worker: Any) -> None:
    from tests.support.tasks import add

    start_worker()
    assert add.delay(4, 5).get(timeout=20) == 9
