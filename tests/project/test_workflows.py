"""Workflows end to end on a real worker process: chains, groups, chords, cancel, status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from celery import states

from project import DuplicateTaskError, app
from project.workflows.canvas import chain, chord, group, load, run, step
from tests.support.polling import eventually
from tests.support.workers import WorkerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def worker(start_worker: StartWorker) -> WorkerProcess:
    return start_worker(concurrency=2)


def test_a_chain_passes_each_result_to_the_next_step_in_order(worker: WorkerProcess) -> None:
    handle = run(chain(step("tests.add", 1, 2), step("tests.add", 10), step("tests.add", 100)))

    progress = handle.wait(timeout=60)

    assert (progress.done, progress.failed, progress.pending) == (3, 0, 0)
    assert handle.results() == [3, 13, 113]
    assert [s.id for s in handle.steps()] == handle.step_ids
    assert app.AsyncResult(handle.step_ids[-1]).get(timeout=5) == 113


def test_a_failing_middle_step_stops_the_chain_and_says_which_and_why(
    worker: WorkerProcess,
) -> None:
    handle = run(
        chain(
            step("tests.add", 1, 2),
            step("tests.permanent", "middle", immutable=True),
            step("tests.mark", "never", immutable=True),
        )
    )

    progress = handle.wait(timeout=60)

    assert (progress.done, progress.failed, progress.skipped) == (1, 1, 1)
    [failed] = handle.failures()
    assert failed.task == "tests.permanent" and failed.path == "1"
    assert failed.error is not None and "PermanentError" in failed.error
    assert "does not exist" in failed.error
    assert [s.state for s in handle.steps()] == [states.SUCCESS, states.FAILURE, "SKIPPED"]


def test_a_group_reports_partial_failures_next_to_successes(
    worker: WorkerProcess, redis: Any
) -> None:
    members = [step("tests.add", i, i) for i in range(47)]
    members += [step("tests.permanent", f"bad-{i}") for i in range(3)]

    handle = run(group(*members))
    progress = handle.wait(timeout=120)

    assert (progress.done, progress.failed, progress.total) == (47, 3, 50)
    assert sorted(s.path for s in handle.failures()) == ["47", "48", "49"]
    assert sorted(handle.results()) == sorted(2 * i for i in range(47))


def test_a_chord_callback_gets_every_header_result(worker: WorkerProcess) -> None:
    handle = run(chord([step("tests.add", i, 1) for i in range(10)], step("tests.total")))

    handle.wait(timeout=60)

    callback = handle.callback()
    assert callback is not None and callback.state == states.SUCCESS
    assert callback.result == sum(i + 1 for i in range(10))


def test_a_failed_header_task_fails_the_chord_callback_without_running_it(
    worker: WorkerProcess, redis: Any
) -> None:
    """Celery's rule, documented in project.workflows.canvas: use tolerant() to always get one."""
    handle = run(
        chord(
            [step("tests.add", 1, 1), step("tests.permanent", "header")],
            step("tests.mark", "callback-ran", immutable=True),
        )
    )

    progress = handle.wait(timeout=60)

    callback = handle.callback()
    assert callback is not None and callback.state == states.FAILURE
    assert callback.error is not None and "ChordError" in callback.error
    assert (progress.done, progress.failed) == (1, 2)
    assert redis.get("test:mark:callback-ran") is None


def test_cancel_stops_the_steps_not_started_yet(worker: WorkerProcess, redis: Any) -> None:
    handle = run(
        chain(
            step("tests.slow_mark", "first", 3.0),
            step("tests.mark", "second", immutable=True),
            step("tests.mark", "third", immutable=True),
        )
    )
    eventually(lambda: redis.llen("test:starts:first"), timeout=60)

    revoked = handle.cancel()

    assert revoked == handle.step_ids  # the first is running: it finishes, the rest never run
    eventually(lambda: redis.llen("test:finishes:first"), timeout=60)
    second = app.AsyncResult(handle.step_ids[1])
    eventually(lambda: second.state == states.REVOKED, timeout=60)  # stored by the worker
    assert redis.get("test:mark:second") is None and redis.get("test:mark:third") is None
    assert handle.progress().finished
    assert [s.state for s in handle.steps()][1:] == [states.REVOKED, states.REVOKED]


def test_another_process_rebuilds_the_handle_from_the_workflow_id(
    worker: WorkerProcess,
) -> None:
    handle = run(chain(step("tests.add", 2, 2), step("tests.add", 1)), meta={"owner": "test"})
    handle.wait(timeout=60)

    again = load(handle.id)

    assert again is not None and again.step_ids == handle.step_ids
    assert again.record.meta == {"owner": "test"} and again.results() == [4, 5]
    assert load("no-such-workflow") is None


def test_a_unique_step_refuses_a_second_workflow_while_the_first_holds_it(
    redis: Any,
) -> None:
    first = run(chain(step("tests.add", 1, 1, unique="sum:1"), step("tests.add", 1)))

    with pytest.raises(DuplicateTaskError):
        run(group(step("tests.noop", unique="other"), step("tests.add", 1, 1, unique="sum:1")))

    assert redis.get("kit:unique:sum:1") == first.step_ids[0]
    assert redis.get("kit:unique:other") is None  # all or nothing: the taken lock is released
