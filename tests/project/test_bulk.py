"""enqueue_many: pipelined publishing that still traces, stamps, routes and de-duplicates."""

from __future__ import annotations

import json
from typing import Any

import pytest
from celery import signals

from project import app
from project.broker.queues import PUBLISHED_AT_HEADER, queue_keys
from project.enqueue.bulk import enqueue_many
from project.workflows.canvas import step
from tests.support.tasks import add, on_low


def _messages(redis: Any, queue: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for key in queue_keys(queue) for raw in redis.lrange(key, 0, -1)]


def test_every_task_is_published_with_the_kits_headers_in_few_round_trips(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis.client

    published: list[str] = []
    flushes: list[int] = []
    execute = redis.client.Pipeline.execute

    def counted(pipe: Any, *args: Any, **kwargs: Any) -> Any:
        flushes.append(len(pipe.command_stack))
        return execute(pipe, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", counted)

    def record(headers: dict[str, Any] | None = None, **_: Any) -> None:
        published.append(str((headers or {}).get("id")))

    signals.before_task_publish.connect(record, weak=False)
    try:
        outcome = enqueue_many([add.s(n, n) for n in range(2000)] + [on_low.s()], batch_size=500)
    finally:
        signals.before_task_publish.disconnect(record)

    assert outcome.published == 2001 and not outcome.duplicates
    assert published == [r.id for r in outcome.results]  # the publish signals ran per task
    # Pipelined: one LPUSH per task, flushed every 500 commands with the queue's bell (one
    # more): a handful of round trips (four full flushes, the last task, kombu's one-off queue
    # declarations), not 2001.
    assert flushes.count(501) == 4 and len(flushes) <= 12
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    default = _messages(client, "default")
    assert len(default) == 2000 and len(_messages(client, "low")) == 1
    headers = default[0]["headers"]
    assert PUBLISHED_AT_HEADER in headers and default[0]["properties"]["priority"] == 5


def test_duplicates_are_skipped_and_reported_with_their_holder(redis: Any) -> None:
    first = enqueue_many([add.s(1, 1)], unique=True)

    again = enqueue_many(
        [add.s(1, 1), add.s(2, 2), step("tests.noop", unique="k"), step("tests.noop", unique="k")],
        unique=True,
    )

    assert again.published == 2
    assert [(d.index, d.holder) for d in again.duplicates] == [
        (0, first.results[0].id),
        (3, again.results[1].id),
    ]
    assert redis.get("kit:unique:k") == again.results[1].id


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_a_worker_runs_what_was_published_and_frees_unique_locks(
    start_worker: Any, redis: Any
) -> None:
    start_worker(concurrency=2)

    outcome = enqueue_many([add.s(n, 1) for n in range(50)], unique=True)

    assert [r.get(timeout=60) for r in outcome.results] == [n + 1 for n in range(50)]
    assert app.AsyncResult(outcome.results[0].id).state == "SUCCESS"
    assert not redis.keys("kit:unique:*")  # released on success, by the headers
