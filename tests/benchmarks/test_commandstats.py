"""Counting in Redis: the workers' commands per task (not the benchmark's own probe's), and a
run's clock when no poll saw it under way."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from benchmarks.core.commandstats import CommandWindow
from benchmarks.core.measure import QueueProbe, measure
from benchmarks.core.processes import PrivateRedis, private_redis


@pytest.fixture
def redis() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


def test_a_window_counts_the_commands_sent_in_it_less_the_probes_polls(
    redis: PrivateRedis,
) -> None:
    client = redis.client
    client.lpush("queue", "preloaded")
    probe = QueueProbe(client, ["queue"])
    probe.remaining()  # loads the script, before the window opens
    window = CommandWindow(client)
    window.start()
    client.lpush("queue", "a", "b")
    with client.pipeline(transaction=True) as pipe:
        pipe.rpop("queue")
        pipe.hset("unacked", "tag", "message")
        pipe.execute()
    for _ in range(3):
        probe.remaining()
    count = window.finish(tasks=2, polls=3, per_poll=probe.per_poll)
    assert count.calls == {"lpush": 1, "multi": 1, "rpop": 1, "hset": 1, "exec": 1}
    assert count.per_task == 2.5
    assert list(count.by_command()) == ["exec", "hset", "lpush", "multi", "rpop"]


def test_from_first_counts_from_the_snapshot_before_the_workers_started(
    redis: PrivateRedis,
) -> None:
    client = redis.client
    window = CommandWindow(client)
    window.start()  # before the workers are spawned
    client.set("started", "1")
    window.start()  # when the clock starts
    client.rpush("done", "1")
    assert window.finish(tasks=1, polls=0, per_poll={}, from_first=True).calls == {
        "set": 1,
        "rpush": 1,
    }


class _Running:
    """A worker that is still running (what measure() asks of one)."""

    def exit_code(self) -> int | None:
        return None

    def describe(self) -> str:
        return "stub"

    def log_tail(self, lines: int = 30) -> str:
        return ""


def test_a_run_no_poll_saw_under_way_is_timed_over_a_span_that_holds_it(
    redis: PrivateRedis,
) -> None:
    client = redis.client
    client.lpush("queue", *range(5))
    probe = QueueProbe(client, ["queue"])
    spawned_at = time.monotonic()
    client.delete("queue")  # all five done before the first poll
    measured = measure(probe, _Running(), 5, spawned_at=spawned_at)
    assert measured.within_one_poll
    assert measured.counted == 5
    assert measured.elapsed >= time.monotonic() - spawned_at - 1.0
    assert measured.elapsed > 0
