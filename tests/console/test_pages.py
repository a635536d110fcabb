"""The HTML pages on real Redis: what each shows, the list page's form actions, trace links,
and that task data is escaped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from project.broker.pause import pause
from project.console.settings import ConsoleSettings
from project.ops import counters
from project.up.redis_server import free_port
from tests.console import tasks as console_tasks
from tests.console.conftest import InProcessConsole, Reply, request
from tests.support.polling import eventually
from tests.support.tasks import add

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def traced_console(kit_app: Any) -> Iterator[InProcessConsole]:
    settings = ConsoleSettings(
        port=free_port(), trace_url_template="https://jaeger.example/trace/{trace_id}"
    )
    server = InProcessConsole(kit_app, settings)
    yield server
    server.stop()


def _session(console: InProcessConsole, path: str) -> tuple[Reply, dict[str, str]]:
    """A page as a browser gets it, and the cookie and token its forms post with."""
    page = request(console.base + path)
    assert page.status == 200
    cookie = page.headers["Set-Cookie"].split(";")[0]
    token = re.search(rb'name="_xsrf" value="([^"]+)"', page.body)
    assert token is not None
    return page, {"Cookie": cookie, "X-XSRFToken": token.group(1).decode()}


def _post_form(console: InProcessConsole, path: str, form: str, session: dict[str, str]) -> Reply:
    headers = {**session, "Content-Type": "application/x-www-form-urlencoded"}
    return request(console.base + path, "POST", headers=headers, data=form.encode())


def test_the_overview_shows_counts_pause_state_and_the_chart(
    console: InProcessConsole, redis: Any
) -> None:
    pause(redis, "low")
    add.apply_async((1, 2), queue="low")
    counters.record(redis, "default", "processed")
    counters.record(redis, "default", "failed")
    body = request(console.base + "/").body.decode()
    low = body[body.index('data-queue="low"') :]
    assert 'data-state="pending"><a href="/queues/low/pending">1</a>' in low
    assert "paused" in low[: low.index("</tr>")] and 'action="/queues/low/resume"' in low
    assert 'data-processed="1" data-failed="1"' in body


def test_the_list_form_archives_ticked_tasks_then_all(
    console: InProcessConsole, redis: Any
) -> None:
    pause(redis, "default")
    ids = [add.apply_async((n, n), queue="default").id for n in range(4)]
    _, session = _session(console, "/queues/default/pending")
    form = f"action=archive:selected&id={ids[0]}&id={ids[1]}"
    reply = _post_form(console, "/queues/default/pending/actions", form, session)
    assert reply.status == 303
    assert reply.headers["Location"].startswith("/queues/default/pending?notice=archive")
    archived = request(console.base + "/api/queues/default/tasks?state=archived").json()
    assert sorted(e["id"] for e in archived["entries"]) == sorted(ids[:2])
    reply = _post_form(console, "/queues/default/pending/actions", "action=archive:all", session)
    assert reply.status == 303
    page = request(console.base + reply.headers["Location"]).body.decode()
    assert "archive: 2 task(s)" in page and "No pending tasks in default." in page


def test_the_list_form_refuses_an_action_the_state_has_not(
    console: InProcessConsole, redis: Any
) -> None:
    _, session = _session(console, "/queues/default/pending")
    reply = _post_form(console, "/queues/default/pending/actions", "action=run:all", session)
    assert reply.status == 400


def test_a_tasks_trace_links_to_the_tracing_ui(
    traced_console: InProcessConsole, redis: Any
) -> None:
    pause(redis, "default")
    task = add.apply_async(
        (1, 1), queue="default", headers={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"}
    )
    page = request(f"{traced_console.base}/tasks/{task.id}").body.decode()
    assert f'href="https://jaeger.example/trace/{TRACE}"' in page


def test_task_data_is_escaped(console: InProcessConsole, redis: Any) -> None:
    pause(redis, "default")
    task = add.apply_async(("<script>alert(1)</script>", "x"), queue="default")
    for path in ("/queues/default/pending", f"/tasks/{task.id}"):
        body = request(console.base + path).body.decode()
        assert "<script>alert(1)" not in body and "&lt;script&gt;alert(1)" in body


def test_the_workers_page_shows_workers_and_held_messages_with_their_lease(
    console: InProcessConsole, kit_worker: Any, redis: Any
) -> None:
    assert kit_worker.hostname in request(console.base + "/workers").body.decode()
    # The in-thread (solo) worker answers no inspect while its task runs: the message it
    # holds shows among the held ones, with its lease.
    running = console_tasks.hold_until.delay("workers-page")
    eventually(lambda: redis.get("test:running:workers-page"), 30)
    try:
        body = request(console.base + "/workers").body.decode()
    finally:
        redis.set("test:release:workers-page", "1")
    held = body[body.index('id="held"') :]
    assert running.id in held and "tests.console.hold_until" in held and " s ago" in held
    assert running.get(timeout=30) is True


def test_the_cron_and_redis_pages(console: InProcessConsole, kit_app: Any) -> None:
    from project.periodic.cron import CronEntry
    from project.periodic.cron_admin import add_entry

    add_entry(kit_app, CronEntry("nightly", "tests.noop", "0 3 * * *", [], {}, None))
    cron = request(console.base + "/cron").body.decode()
    assert "nightly" in cron and "tests.noop" in cron and "0 3 * * *" in cron
    info = request(console.base + "/redis").body.decode()
    assert "used_memory_human" in info and "aof_enabled" in info
