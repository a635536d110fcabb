"""The worker's default pool hands a task to an idle child as it arrives, with Celery's rules.

The pool tests run a real prefork pool (its children forked, a real kombu event hub) with a
plain Celery app, and look at one thing: whether a task has been written to a child's pipe
when ``apply_async`` returns, before the event loop turns again. Each runs in a fresh
interpreter (:func:`probe`): forking the suite's own process, with the threads earlier tests
left in it, can leave a child stuck on a lock one of them held."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from celery import Celery
from celery.concurrency import get_implementation
from celery.concurrency import prefork as celery_prefork
from kombu.asynchronous import Hub

import project
from project.lifecycle import prefork

POOLS = {"kit": prefork.TaskPool, "celery": celery_prefork.TaskPool}


def double(value: int) -> int:
    return value * 2


def _run_until(hub: Hub, done: Callable[[], object], timeout: float = 20.0) -> None:
    """Turn the event loop until ``done()``; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"not done within {timeout}s")
        hub.run_once()


def probe(pool_name: str, values: list[int]) -> dict[str, list[Any]]:
    """In this process: a one-child pool given ``values`` to double, one ``apply_async`` each
    with no loop turn between them; whether each was written to the child when its call
    returned, then the results in order of arrival."""
    app = Celery(set_as_current=False)
    pool = POOLS[pool_name](
        1,
        initargs=(app, "pool-test@host"),
        threads=False,  # the event-loop pool, as a worker with the Redis transport runs it
        sched_strategy="fair",  # Celery's default
        putlocks=False,
        app=app,
    )
    pool.start()
    hub = Hub()
    try:
        pool.register_with_event_loop(hub)
        _run_until(hub, lambda: pool._pool._all_inqueues)
        results: list[int] = []
        jobs = [pool.apply_async(double, (value,), callback=results.append) for value in values]
        written = [job._write_to is not None for job in jobs]
        _run_until(hub, lambda: len(results) == len(values))
        return {"written": written, "results": results}
    finally:
        pool.terminate()
        hub.close()


def _probe(pool_name: str, values: list[int]) -> dict[str, list[Any]]:
    code = (
        "import json, sys; from tests.project.test_prefork_pool import probe; "
        "print(json.dumps(probe(sys.argv[1], json.loads(sys.argv[2]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, pool_name, json.dumps(values)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, list[Any]] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_the_kits_app_runs_its_workers_on_the_kits_prefork_pool() -> None:
    pool = get_implementation(project.app.conf.worker_pool)
    assert pool is prefork.TaskPool
    assert issubclass(pool, celery_prefork.TaskPool)  # time limits, recycling: Celery's


def test_a_task_for_an_idle_child_is_written_to_it_before_the_loop_turns() -> None:
    assert _probe("kit", [21]) == {"written": [True], "results": [42]}


def test_celerys_pool_writes_it_only_when_the_loop_turns() -> None:
    """What the kit's pool changes (if Celery did this itself, the kit's pool could go)."""
    assert _probe("celery", [21]) == {"written": [False], "results": [42]}


def test_a_busy_child_gets_its_next_task_only_once_it_is_free() -> None:
    # The fair strategy: one task per child at a time; the second waits for the first's end.
    assert _probe("kit", [1, 2]) == {"written": [True, False], "results": [2, 4]}


@pytest.mark.e2e
def test_a_worker_reports_the_kits_pool(start_worker: Any) -> None:
    from tests.support.tasks import add

    worker = start_worker()
    assert add.delay(2, 2).get(timeout=20) == 4
    node = worker.nodename.replace("%h", socket.gethostname())
    replies = project.app.control.inspect([node], timeout=10).stats() or {}
    assert replies[node]["pool"]["implementation"] == "project.lifecycle.prefork:TaskPool"
