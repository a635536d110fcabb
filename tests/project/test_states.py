"""The state model (project.ops.states): every state listed from what real workers left in
Redis, pages with flat memory over 100,000 tasks, and operator actions that never let a
removed task run nor run a task twice."""

from __future__ import annotations

import dataclasses
import json
import socket
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest

from project.broker.queues import queue_keys
from project.enqueue.aggregation import enqueue_grouped
from project.errors import TaskStateError, UnknownQueueError, UnknownTaskError
from project.lifecycle.kit import default_kit
from project.ops.states import (
    TaskState,
    archive_task,
    delete_task,
    find_task,
    list_tasks,
    purge_queue,
    queue_overview,
    requeue_task,
    run_task,
)
from project.ops.states.lookup import held as held_task
from project.ops.stats import collect
from tests.support.pending import fill_pending
from tests.support.polling import eventually

#: Worker settings: a delay over one second waits in the durable schedule, forwarded at once.
DURABLE = {"KIT_DURABLE_DELAY_THRESHOLD": "1", "KIT_FORWARDER_INTERVAL": "0.2"}


def _app() -> Any:
    return default_kit().app


def _client() -> Any:
    return default_kit().redis


def _ids(queue: str, state: TaskState | str, limit: int = 50) -> list[str]:
    return [e.id for e in list_tasks(_app(), _client(), queue, state, limit).entries]


def _node(worker: Any) -> str:
    return str(worker.nodename).replace("%h", socket.gethostname())


@pytest.fixture
def short_threshold() -> Iterator[None]:
    """This process schedules durably what waits over a second, as the workers do."""
    kit = default_kit()
    with kit.override(delay=dataclasses.replace(kit.settings.delay, durable_delay_threshold=1.0)):
        yield


@pytest.fixture
def slow_retries() -> Iterator[None]:
    """Retries wait ten minutes: a retried task stays retrying while the test looks."""
    kit = default_kit()
    retries = dataclasses.replace(kit.settings.retries, backoff=600.0, backoff_max=600.0)
    with kit.override(retries=retries):
        yield


# -- paging ---------------------------------------------------------------------------------


def _page_through(limit: int) -> tuple[int, int, int]:
    """(entries, sum of their numbers, peak bytes allocated) over every page."""
    seen = total = 0
    cursor: str | None = None
    tracemalloc.start()
    try:
        while True:
            page = list_tasks(_app(), _client(), "default", "pending", limit, cursor)
            for entry in page.entries:
                seen += 1
                total += int(entry.id.removeprefix("bulk-"))
            cursor = page.next_cursor
            if cursor is None:
                break
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return seen, total, peak


def test_paging_100000_pending_tasks_sees_each_once_with_flat_memory(redis: Any) -> None:
    fill_pending(redis, 10_000)
    small = _page_through(200)
    assert small[:2] == (10_000, sum(range(10_000)))
    redis.delete(*queue_keys("default"))
    fill_pending(redis, 100_000)
    large = _page_through(200)
    assert large[:2] == (100_000, sum(range(100_000)))
    assert large[2] < 4 * 1024 * 1024  # bytes: a page's worth, not the queue
    assert large[2] < 2 * small[2]  # ten times the tasks, not ten times the memory


def test_pages_follow_the_order_tasks_run_in(redis: Any) -> None:
    from tests.support.tasks import count

    sent = [count.apply_async((f"o{i}",), priority=9 if i % 2 else 0).id for i in range(6)]
    first = list_tasks(_app(), _client(), "default", "pending", limit=4)
    assert first.next_cursor is not None
    rest = list_tasks(_app(), _client(), "default", "pending", 4, first.next_cursor)
    urgent, later = sent[0::2], sent[1::2]
    assert [e.id for e in first.entries + rest.entries] == urgent + later
    assert rest.next_cursor is None
    row = first.entries[0]
    assert (row.name, row.args, row.attempts) == ("tests.count", '["o0"]', 1)
    assert row.enqueued_at is not None


def _all_pages(queue: str, state: str, limit: int) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = list_tasks(_app(), _client(), queue, state, limit, cursor)
        ids += [e.id for e in page.entries]
        if (cursor := page.next_cursor) is None:
            return ids


def test_archived_pages_hold_one_queue_newest_first(redis: Any) -> None:
    from project.retries.archive import ArchivedTask

    for i in range(30):
        record = ArchivedTask(
            id=f"a{i}",
            task="tests.count",
            reason="permanent",
            error_type="PermanentError",
            error="boom",
            queue="low" if i % 2 else "default",
            archived_at=1000.0 + i,
        )
        default_kit().archive().add(record)
    assert _all_pages("default", "archived", 4) == [f"a{i}" for i in range(28, -1, -2)]


def test_scheduled_pages_hold_one_queue_soonest_first(short_threshold: None) -> None:
    from tests.support.tasks import count

    sent = [
        count.apply_async((f"s{i}",), countdown=600 + i, queue="low" if i % 3 else "default").id
        for i in range(20)
    ]
    assert _all_pages("default", "scheduled", 3) == sent[0::3]


def test_completed_pages_see_each_success_of_the_queue_once(celery_worker: Any) -> None:
    from tests.support.tasks import add, on_low

    done = [add.delay(i, i) for i in range(12)]
    assert [r.get(timeout=30) for r in done] == [2 * i for i in range(12)]
    assert on_low.delay().get(timeout=30) == "low"
    listed = [i for i in _all_pages("default", "completed", 5) if i in {r.id for r in done}]
    assert sorted(listed) == sorted(r.id for r in done)


# -- each state, put there by real workers ---------------------------------------------------


@pytest.mark.e2e
def test_a_running_task_is_active_with_the_worker_that_holds_it(
    start_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import slow_mark

    worker = start_worker(concurrency=1)
    running = slow_mark.delay("active", 30)
    eventually(lambda: redis.llen("test:starts:active") == 1, 30)
    (entry,) = list_tasks(_app(), _client(), "default", "active").entries
    assert (entry.id, entry.state, entry.worker) == (running.id, TaskState.ACTIVE, _node(worker))
    assert find_task(_app(), _client(), running.id).entry.state is TaskState.ACTIVE
    with pytest.raises(TaskStateError, match="it is active"):
        delete_task(_app(), _client(), running.id)


def test_a_retried_task_is_retrying_with_its_last_error(
    short_threshold: None, slow_retries: None, celery_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import flaky

    result = flaky.delay("retrying", 5)

    def listed() -> list[Any]:  # the error is stored just after the retry is scheduled
        entries = list_tasks(_app(), _client(), "default", "retrying").entries
        return entries if entries and entries[0].error else []

    (entry,) = eventually(listed, 30)
    assert entry.id == result.id
    assert entry.attempts == 2 and entry.due_at is not None
    assert entry.error == "TransientError: attempt 1 failed, try again"
    assert _ids("default", "scheduled") == []


def test_a_long_countdown_is_scheduled_in_the_durable_schedule(short_threshold: None) -> None:
    from tests.support.tasks import count

    later = count.apply_async(("later",), countdown=3600, queue="low")
    (entry,) = list_tasks(_app(), _client(), "low", "scheduled").entries
    assert (entry.id, entry.name, entry.queue) == (later.id, "tests.count", "low")
    assert entry.due_at is not None and entry.attempts == 1
    detail = find_task(_app(), _client(), later.id)
    assert detail.payload["args"] == ["later"]


def test_a_short_countdown_held_by_a_worker_is_scheduled(celery_worker: Any, redis: Any) -> None:
    from tests.support.tasks import count

    held = count.apply_async(("held",), countdown=40)  # under the durable threshold (60 s)
    eventually(lambda: _ids("default", "scheduled") == [held.id], 30)
    (entry,) = list_tasks(_app(), _client(), "default", "scheduled").entries
    assert entry.due_at is not None and entry.worker == celery_worker.hostname
    assert _ids("default", "active") == []


def test_a_permanent_failure_is_archived_with_its_error(celery_worker: Any) -> None:
    from tests.support.tasks import permanent

    failed = permanent.delay("archived")
    eventually(lambda: _ids("default", "archived") == [failed.id], 30)
    (entry,) = list_tasks(_app(), _client(), "default", "archived").entries
    assert entry.error == "PermanentError: payload names a file that does not exist"
    assert entry.finished_at is not None and entry.args == '["archived"]'


def test_a_success_is_completed_with_its_queue_and_result(celery_worker: Any) -> None:
    from tests.support.tasks import add, on_low

    done = add.delay(2, 3)
    assert done.get(timeout=30) == 5
    assert on_low.delay().get(timeout=30) == "low"
    entries = list_tasks(_app(), _client(), "default", "completed").entries
    (entry,) = [e for e in entries if e.name != "celery.ping"]  # the worker's start-up ping
    assert (entry.id, entry.name, entry.args, entry.attempts) == (done.id, "tests.add", "[2,3]", 1)
    assert entry.finished_at is not None
    detail = find_task(_app(), _client(), done.id)
    assert detail.result == 5 and detail.entry.state is TaskState.COMPLETED


def test_an_aggregation_group_is_aggregating_with_its_size(redis: Any) -> None:
    for i in range(3):
        enqueue_grouped("tests.collect", {"n": i}, group="g1", max_delay=3600, grace=3600)
    (entry,) = list_tasks(_app(), _client(), "default", "aggregating").entries
    assert (entry.id, entry.name) == ("tests.collect|g1", "tests.collect")
    assert json.loads(entry.kwargs) == {"group": "g1", "size": 3}
    assert find_task(_app(), _client(), entry.id).entry.state is TaskState.AGGREGATING


def test_the_overview_counts_every_state_per_queue(short_threshold: None, redis: Any) -> None:
    from tests.support.tasks import count

    for i in range(3):
        count.delay(f"p{i}")
    count.apply_async(("s",), countdown=600)
    rows = {row["queue"]: row for row in queue_overview(_app(), _client())}
    assert rows["default"]["counts"]["pending"] == 3
    assert rows["default"]["counts"]["scheduled"] == 1
    assert set(rows["default"]["counts"]) == {s.value for s in TaskState}
    assert rows["default"]["latency_seconds"] is not None
    assert rows["low"]["latency_seconds"] is None and not rows["low"]["paused"]


# -- actions ---------------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_deleted_pending_task_never_runs_while_a_worker_consumes(
    start_worker: Any, redis: Any
) -> None:
    from tests.support.state_tasks import IMPORTS, blocker, release
    from tests.support.tasks import count

    start_worker(concurrency=1, env={"KIT_IMPORTS": IMPORTS})
    blocker.delay("blocker")  # occupies the only process until released
    eventually(lambda: redis.llen("test:starts:blocker") == 1, 30)
    victim = count.delay("victim")
    survivor = count.delay("survivor")
    before = _pending_stat()
    assert delete_task(_app(), _client(), victim.id) is TaskState.PENDING
    assert _pending_stat() == before - 1
    release("blocker")
    assert survivor.get(timeout=30) == 1
    assert not redis.exists("test:count:victim")
    with pytest.raises(UnknownTaskError):
        find_task(_app(), _client(), victim.id)


def _time_passes(redis: Any) -> None:
    """Everything in the durable schedule falls due now (as if its hour had passed)."""
    for member in redis.zrange("kit:scheduled", 0, -1):
        redis.zadd("kit:scheduled", {member: 0}, xx=True)


def _pending_stat() -> int:
    snapshot = collect(_app(), _client(), default_kit().settings, timeout=0.1)
    return next(q.pending for q in snapshot.queues if q.queue == "default")


@pytest.mark.e2e
def test_a_deleted_scheduled_task_never_runs(
    short_threshold: None, start_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import count

    start_worker(env=DURABLE)
    victim = count.apply_async(("victim",), countdown=3600)
    witness = count.apply_async(("witness",), countdown=3600)
    assert delete_task(_app(), _client(), victim.id) is TaskState.SCHEDULED
    _time_passes(redis)
    assert witness.get(timeout=30) == 1  # the forwarder published what was due
    assert not redis.exists("test:count:victim")


@pytest.mark.e2e
def test_a_deleted_task_held_for_its_eta_never_runs(start_worker: Any, redis: Any) -> None:
    from tests.support.tasks import count

    start_worker()
    victim = count.apply_async(("victim",), countdown=10)  # under the threshold: held
    witness = count.apply_async(("witness",), countdown=11)
    eventually(lambda: len(_ids("default", "scheduled")) == 2, 30)
    assert delete_task(_app(), _client(), victim.id) is TaskState.SCHEDULED
    assert witness.get(timeout=30) == 1
    assert not redis.exists("test:count:victim")
    assert held_task(_client(), victim.id) is None  # no record left for a restart to bring back


@pytest.mark.e2e
def test_concurrent_deletes_either_remove_a_task_or_leave_it_to_run_once(
    start_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import count

    sent = [count.delay(f"race{i}").id for i in range(300)]
    start_worker(concurrency=2)
    deleted, refused = set(), set()
    for i, task_id in reversed(list(enumerate(sent))):  # newest first: the worker meets them last
        if i % 2:
            try:
                delete_task(_app(), _client(), task_id)
                deleted.add(i)
            except (TaskStateError, UnknownTaskError):
                refused.add(i)
    ran = {i for i in range(300) if i not in deleted}
    eventually(lambda: all(redis.get(f"test:count:race{i}") == "1" for i in ran), 60)
    assert not any(redis.exists(f"test:count:race{i}") for i in deleted)
    assert deleted  # some were caught waiting


def test_archiving_a_pending_task_then_requeueing_it_runs_it_once(redis: Any) -> None:
    from tests.support.tasks import count

    queued = count.delay("again")
    assert archive_task(_app(), _client(), queued.id) is TaskState.PENDING
    assert sum(redis.llen(k) for k in queue_keys("default")) == 0
    record = default_kit().archive().get(queued.id)
    assert record is not None and record.reason == "archived by operator"
    assert _ids("default", "archived") == [queued.id]
    assert requeue_task(_app(), _client(), queued.id) is TaskState.ARCHIVED
    assert _ids("default", "pending") == [queued.id]
    assert default_kit().archive().get(queued.id) is None


def test_archiving_a_scheduled_task_takes_it_out_of_the_schedule(short_threshold: None) -> None:
    from tests.support.tasks import count

    later = count.apply_async(("later",), countdown=600)
    assert archive_task(_app(), _client(), later.id) is TaskState.SCHEDULED
    assert _ids("default", "scheduled") == [] and _ids("default", "archived") == [later.id]


@pytest.mark.e2e
def test_running_a_scheduled_task_now_runs_it_once(
    short_threshold: None, start_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import count

    start_worker(env=DURABLE)
    later = count.apply_async(("now",), countdown=3600)
    assert run_task(_app(), _client(), later.id) is TaskState.SCHEDULED
    assert later.get(timeout=30) == 1
    assert _ids("default", "scheduled") == []


@pytest.mark.e2e
def test_running_a_task_held_for_its_eta_runs_a_copy_now_and_never_the_original(
    start_worker: Any, redis: Any
) -> None:
    from project.ops.states import copy_id
    from tests.support.tasks import count

    start_worker()
    held = count.apply_async(("eta",), countdown=10)
    witness = count.apply_async(("eta-witness",), countdown=11)
    eventually(lambda: held.id in _ids("default", "scheduled"), 30)
    assert run_task(_app(), _client(), held.id) is TaskState.SCHEDULED
    assert _app().AsyncResult(copy_id(held.id)).get(timeout=30) == 1
    assert witness.get(timeout=30) == 1  # the original's ETA has passed too
    assert redis.get("test:count:eta") == "1"


@pytest.mark.e2e
def test_archiving_a_task_held_for_its_eta_archives_it_under_a_new_id_that_can_run(
    start_worker: Any, redis: Any
) -> None:
    from project.ops.states import copy_id
    from tests.support.tasks import count

    start_worker()
    held = count.apply_async(("held-arch",), countdown=10)
    witness = count.apply_async(("held-arch-witness",), countdown=11)
    eventually(lambda: held.id in _ids("default", "scheduled"), 30)
    assert archive_task(_app(), _client(), held.id) is TaskState.SCHEDULED
    assert _ids("default", "archived") == [copy_id(held.id)]
    assert witness.get(timeout=30) == 1  # the original's ETA has passed: it did not run
    assert not redis.exists("test:count:held-arch")
    requeue_task(_app(), _client(), copy_id(held.id))
    assert _app().AsyncResult(copy_id(held.id)).get(timeout=30) == 1


def test_running_an_archived_task_requeues_it(redis: Any) -> None:
    from tests.support.tasks import count

    queued = count.delay("arch-run")
    archive_task(_app(), _client(), queued.id)
    assert run_task(_app(), _client(), queued.id) is TaskState.ARCHIVED
    assert _ids("default", "pending") == [queued.id]


def test_purge_removes_each_state_and_counts_what_it_removed(
    short_threshold: None, redis: Any
) -> None:
    from tests.support.tasks import count

    for i in range(5):
        count.delay(f"pp{i}")
    count.apply_async(("low",), queue="low")
    for i in range(3):
        count.apply_async((f"ps{i}",), countdown=600)
    archived = count.delay("pa")
    archive_task(_app(), _client(), archived.id)
    assert purge_queue(_app(), _client(), "default", "pending") == 5
    assert purge_queue(_app(), _client(), "default", "scheduled") == 3
    assert purge_queue(_app(), _client(), "default", "archived") == 1
    assert purge_queue(_app(), _client(), "default", "pending") == 0
    assert _ids("low", "pending") != []
    assert not redis.keys("kit:scheduled:task:*") and not redis.keys("kit:archived:*")


@pytest.mark.e2e
def test_purging_scheduled_tasks_also_revokes_those_held_for_their_eta(
    start_worker: Any, redis: Any
) -> None:
    from tests.support.tasks import count

    start_worker()
    held = [count.apply_async((f"ph{i}",), countdown=10) for i in range(2)]
    witness = count.apply_async(("ph-witness",), countdown=11, queue="low")
    eventually(lambda: len(_ids("default", "scheduled")) == 2, 30)
    assert purge_queue(_app(), _client(), "default", "scheduled") == 2
    assert witness.get(timeout=30) == 1  # their ETAs have passed too
    assert not any(redis.exists(f"test:count:ph{i}") for i in range(2))
    assert all(held_task(_client(), r.id) is None for r in held)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: find_task(_app(), _client(), "nope"), UnknownTaskError),
        (lambda: delete_task(_app(), _client(), "nope"), UnknownTaskError),
        (lambda: list_tasks(_app(), _client(), "urgent", "pending"), UnknownQueueError),
        (lambda: list_tasks(_app(), _client(), "default", "sleeping"), UnknownQueueError),
        (lambda: list_tasks(_app(), _client(), "default", "pending", 5, "x"), UnknownQueueError),
        (lambda: purge_queue(_app(), _client(), "default", "active"), UnknownQueueError),
    ],
)
def test_bad_ids_queues_states_and_cursors_are_named_errors(call: Any, error: type) -> None:
    with pytest.raises(error):
        call()


def test_an_action_on_a_task_in_the_wrong_state_is_refused(redis: Any) -> None:
    from tests.support.tasks import count

    queued = count.delay("wrong")
    with pytest.raises(TaskStateError, match=r"cannot run task .* it is pending"):
        run_task(_app(), _client(), queued.id)
    with pytest.raises(TaskStateError, match="requeue"):
        requeue_task(_app(), _client(), queued.id)


def test_each_action_logs_one_line_without_arguments(
    redis: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.support.tasks import count

    queued = count.delay("secret-argument")
    with caplog.at_level("INFO", logger="project.ops.states.actions"):
        delete_task(_app(), _client(), queued.id)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "project.ops.states.actions"]
    assert line == f"operator delete: task {queued.id} (tests.count) in queue default, was pending"
    assert "secret-argument" not in caplog.text


def test_deleting_a_unique_task_frees_its_lock_for_the_same_work(redis: Any) -> None:
    from project.enqueue.dedup import enqueue_unique
    from tests.support.tasks import count

    first = enqueue_unique(count.s("once"), key="work:once")
    assert redis.get("kit:unique:work:once") == first.id
    delete_task(_app(), _client(), first.id)
    assert not redis.exists("kit:unique:work:once")
    again = enqueue_unique(count.s("once"), key="work:once")  # no DuplicateTaskError
    assert _ids("default", "pending") == [again.id]
