"""The JSON API on real Redis and a real worker: counts, pages, details, actions, and the
status code of each kind of bad request."""

from __future__ import annotations

import threading
import tracemalloc
from typing import Any

from project.broker.pause import pause
from project.broker.queues import queue_keys
from project.ops.states import TaskState
from tests.console import tasks as console_tasks
from tests.console.conftest import InProcessConsole, request
from tests.support.pending import fill_pending
from tests.support.polling import eventually
from tests.support.tasks import add


def _paused_pending(redis: Any, queue: str, count: int) -> list[str]:
    pause(redis, queue)
    return [add.apply_async((n, n), queue=queue).id for n in range(count)]


def _counts(console: InProcessConsole) -> dict[str, dict[str, int]]:
    reply = request(console.base + "/api/queues")
    assert reply.status == 200
    return {row["queue"]: row["counts"] for row in reply.json()["queues"]}


def test_queues_lists_each_configured_queue_with_its_counts(
    console: InProcessConsole, redis: Any
) -> None:
    for queue, waiting in (("critical", 1), ("default", 2), ("low", 3)):
        _paused_pending(redis, queue, waiting)
    counts = _counts(console)
    assert {q: c["pending"] for q, c in counts.items()} == {"critical": 1, "default": 2, "low": 3}
    assert set(counts["default"]) == {state.value for state in TaskState}
    rows = request(console.base + "/api/queues").json()["queues"]
    assert all(row["paused"] for row in rows)


def test_a_list_is_paged_with_its_cursor(console: InProcessConsole, redis: Any) -> None:
    ids = _paused_pending(redis, "default", 3)
    url = console.base + "/api/queues/default/tasks?state=pending&limit=2"
    first = request(url).json()
    assert len(first["entries"]) == 2 and first["next_cursor"]
    second = request(f"{url}&cursor={first['next_cursor']}").json()
    seen = [e["id"] for e in first["entries"] + second["entries"]]
    assert sorted(seen) == sorted(ids) and second["next_cursor"] is None


def test_an_archived_task_shows_its_error_and_traceback(
    console: InProcessConsole, kit_worker: Any, kit_archive: Any
) -> None:
    result = console_tasks.gate.delay("closed")
    eventually(lambda: kit_archive.get(result.id), 30)
    detail = request(f"{console.base}/api/tasks/{result.id}").json()
    assert detail["entry"]["state"] == "archived"
    assert detail["entry"]["error"] == "PermanentError: gate closed is closed"
    assert "PermanentError" in detail["traceback"]
    assert detail["payload"]["args"] == ["closed"]


def test_requeue_runs_an_archived_task_again(
    console: InProcessConsole, kit_worker: Any, kit_archive: Any, redis: Any
) -> None:
    result = console_tasks.gate.delay("fixed-later")
    eventually(lambda: kit_archive.get(result.id), 30)
    redis.set("test:gate:fixed-later", "1")  # the cause is fixed
    reply = request(f"{console.base}/api/tasks/{result.id}/requeue", "POST")
    assert reply.status == 200 and reply.json()["from_state"] == "archived"
    # Not result.get(): the first run's FAILURE stays stored until the new run's result.
    url = f"{console.base}/api/tasks/{result.id}"
    eventually(lambda: request(url).json()["entry"]["state"] == "completed", 30)
    assert request(url).json()["result"] == "gate fixed-later passed"


def test_archive_run_and_delete_move_a_task(console: InProcessConsole, redis: Any) -> None:
    [task_id] = _paused_pending(redis, "low", 1)
    base = f"{console.base}/api/tasks/{task_id}"
    assert request(f"{base}/archive", "POST").json()["from_state"] == "pending"
    assert request(base).json()["entry"]["state"] == "archived"
    assert request(f"{base}/run", "POST").json()["from_state"] == "archived"
    assert request(base).json()["entry"]["state"] == "pending"
    assert request(f"{base}/delete", "POST").json()["from_state"] == "pending"
    assert request(base).status == 404


def test_purge_empties_a_state_of_a_queue(console: InProcessConsole, redis: Any) -> None:
    _paused_pending(redis, "default", 3)
    reply = request(f"{console.base}/api/queues/default/purge?state=pending", "POST")
    assert reply.status == 200 and reply.json()["removed"] == 3
    assert _counts(console)["default"]["pending"] == 0


def test_unknown_ids_and_queues_are_404(console: InProcessConsole) -> None:
    assert request(console.base + "/api/tasks/no-such-task").status == 404
    assert request(console.base + "/api/tasks/no-such-task/run", "POST").status == 404
    assert request(console.base + "/api/queues/nope/tasks?state=pending").status == 404
    reply = request(console.base + "/api/queues/nope/pause", "POST")
    assert reply.status == 404 and "unknown queue 'nope'" in reply.json()["error"]
    assert request(console.base + "/queues/nope/pending").status == 404


def test_an_action_the_state_does_not_allow_is_409(console: InProcessConsole, redis: Any) -> None:
    [task_id] = _paused_pending(redis, "default", 1)
    reply = request(f"{console.base}/api/tasks/{task_id}/requeue", "POST")
    assert reply.status == 409
    assert "it is pending" in reply.json()["error"]


def test_a_bad_state_limit_or_cursor_is_400(console: InProcessConsole) -> None:
    tasks = console.base + "/api/queues/default/tasks"
    for query in (
        "state=sleeping",
        "",
        "state=pending&limit=0",
        "state=pending&limit=501",
        "state=pending&limit=ten",
        "state=pending&cursor=bogus",
    ):
        reply = request(f"{tasks}?{query}")
        assert reply.status == 400, (query, reply.body)
    purge = console.base + "/api/queues/default/purge"
    assert request(purge, "POST").status == 400  # purge needs a state
    assert request(purge + "?state=active", "POST").status == 400  # and one it can purge


def test_a_slow_call_does_not_hold_up_other_requests(console: InProcessConsole) -> None:
    """The workers page waits a full inspect timeout for replies; Redis reads made meanwhile
    are answered while it waits, so the loop is not blocked."""
    finished: list[str] = []
    slow = threading.Thread(
        target=lambda: finished.append(str(request(console.base + "/api/workers").status))
    )
    slow.start()
    answered = 0
    while slow.is_alive():
        reply = request(console.base + "/api/redis")
        if slow.is_alive():
            assert reply.status == 200
            answered += 1
    assert finished == ["200"]
    assert answered >= 3  # a blocked loop answers them only after the slow one


def test_redis_out_of_reach_is_503(private_redis: Any) -> None:
    from project.application import create_app
    from project.console.settings import ConsoleSettings
    from project.settings import load_settings
    from project.up.redis_server import free_port

    app = create_app(load_settings({"REDIS_URL": private_redis.url}))
    server = InProcessConsole(app, ConsoleSettings(port=free_port()))
    try:
        assert request(server.base + "/api/redis").status == 200
        private_redis.stop()
        reply = request(server.base + "/api/redis")
        assert reply.status == 503 and "Redis is unreachable" in reply.json()["error"]
    finally:
        server.stop()


def test_running_a_task_a_worker_holds_for_its_eta_goes_on_under_its_copy(
    console: InProcessConsole, kit_worker: Any
) -> None:
    from project.ops.states import copy_id

    task = add.apply_async((2, 3), countdown=50)  # under the durable threshold: held in memory
    url = f"{console.base}/api/tasks/{task.id}"
    eventually(lambda: request(url).json()["entry"]["state"] == "scheduled", 30)
    reply = request(f"{url}/run", "POST").json()
    assert reply["from_state"] == "scheduled" and reply["id_now"] == copy_id(task.id)
    copy = f"{console.base}/api/tasks/{reply['id_now']}"
    eventually(lambda: request(copy).json()["entry"]["state"] == "completed", 30)
    assert request(copy).json()["result"] == 5


def _api_page_through(console: InProcessConsole, limit: int) -> tuple[int, int, int]:
    """(entries, sum of their numbers, peak bytes allocated in this process, where the
    console runs) over every page of the pending list, through the API's cursor."""
    seen = total = 0
    url = f"{console.base}/api/queues/default/tasks?state=pending&limit={limit}"
    cursor: str | None = None
    tracemalloc.start()
    try:
        while True:
            reply = request(url + (f"&cursor={cursor}" if cursor else ""))
            assert reply.status == 200
            page = reply.json()
            for entry in page["entries"]:
                seen += 1
                total += int(entry["id"].removeprefix("bulk-"))
            if (cursor := page["next_cursor"]) is None:
                break
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return seen, total, peak


def test_the_api_pages_100000_pending_tasks_each_once_with_flat_memory(
    console: InProcessConsole, redis: Any
) -> None:
    fill_pending(redis, 10_000)
    small = _api_page_through(console, 500)
    assert small[:2] == (10_000, sum(range(10_000)))
    redis.delete(*queue_keys("default"))
    fill_pending(redis, 100_000)
    large = _api_page_through(console, 500)
    assert large[:2] == (100_000, sum(range(100_000)))
    assert large[2] < 8 * 1024 * 1024  # bytes: a page's worth, not the queue
    assert large[2] < 2 * small[2]  # ten times the tasks, not ten times the memory
