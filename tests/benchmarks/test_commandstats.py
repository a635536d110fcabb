"""Redis commands per task: the benchmark counts the workers' commands, not its own probe's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.core.commandstats import CommandWindow
from benchmarks.core.measure import QueueProbe
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
