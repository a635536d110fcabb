"""Aggregation: members held in Redis reach their aggregator as lists, none lost or repeated."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

from project import ValidationError, enqueue_grouped
from project.enqueue.aggregation import Aggregator, Batch
from tests.support.polling import eventually

AGG = "tests.collect"


def _claim(redis: Any, group: str, now: float | None = None) -> Batch | None:
    return Aggregator(redis).claim(f"{AGG}|{group}", now)


def test_a_full_group_hands_over_exactly_max_size_members_oldest_first(redis: Any) -> None:
    for i in range(12):
        enqueue_grouped(AGG, {"n": i}, group="full", max_size=5, grace=60, client=redis)
    first, second = _claim(redis, "full"), _claim(redis, "full")
    assert first is not None and second is not None
    assert [m["n"] for m in first.items] == [0, 1, 2, 3, 4]
    assert [m["n"] for m in second.items] == [5, 6, 7, 8, 9]
    assert _claim(redis, "full") is None  # two left, neither full nor due
    assert Aggregator(redis).waiting(AGG, "full") == 2


def test_a_group_is_handed_over_after_its_grace_period_without_new_members(redis: Any) -> None:
    enqueue_grouped(AGG, "a", group="quiet", max_size=10, grace=2, max_delay=60, client=redis)
    enqueue_grouped(AGG, "b", group="quiet", max_size=10, grace=2, max_delay=60, client=redis)
    assert _claim(redis, "quiet", now=time.time() + 1) is None
    batch = _claim(redis, "quiet", now=time.time() + 2.5)
    assert batch is not None and batch.items == ["a", "b"]
    assert batch.group == "quiet" and batch.aggregator == AGG
    assert Aggregator(redis).groups() == []  # an emptied group is forgotten


def test_a_busy_group_is_handed_over_after_its_maximum_delay(redis: Any) -> None:
    enqueue_grouped(AGG, 1, group="busy", max_size=100, grace=30, max_delay=5, client=redis)
    # New members keep the grace period from ending; the oldest one's delay still counts.
    assert _claim(redis, "busy", now=time.time() + 4) is None
    batch = _claim(redis, "busy", now=time.time() + 5.5)
    assert batch is not None and batch.items == [1]


def test_groups_of_different_keys_and_aggregators_are_separate(redis: Any) -> None:
    enqueue_grouped(AGG, "x", group="user:1", max_size=1, client=redis)
    enqueue_grouped(AGG, "y", group="user:2", max_size=1, client=redis)
    enqueue_grouped("tests.other", "z", group="user:1", max_size=1, client=redis)
    assert Aggregator(redis).groups() == sorted(
        [f"{AGG}|user:1", f"{AGG}|user:2", "tests.other|user:1"]
    )
    batch = _claim(redis, "user:1")
    assert batch is not None and batch.items == ["x"]


def test_a_claim_whose_flusher_died_is_found_again(redis: Any) -> None:
    enqueue_grouped(AGG, "kept", group="crash", max_size=1, client=redis)
    claimed = _claim(redis, "crash")
    assert claimed is not None
    # The flusher died before publishing: the members are neither in the group nor lost.
    assert Aggregator(redis).waiting(AGG, "crash") == 0
    (stale,) = Aggregator(redis).stale(timeout=0)
    assert (stale.id, stale.items) == (claimed.id, ["kept"])
    Aggregator(redis).complete(stale.id)
    assert Aggregator(redis).stale(timeout=0) == []


@pytest.mark.parametrize(
    ("item", "options", "message"),
    [
        ({1, 2}, {}, "must be JSON"),
        (float("nan"), {}, "must be JSON"),
        ("x" * 70_000, {}, "store large data elsewhere"),
        ("ok", {"group": ""}, "group must be"),
        ("ok", {"group": 7}, "group must be"),
        ("ok", {"max_size": 0}, "max_size must be"),
        ("ok", {"max_size": True}, "max_size must be"),
        ("ok", {"grace": -1}, "grace must be"),
        ("ok", {"max_delay": "soon"}, "max_delay must be"),
    ],
)
def test_bad_members_and_limits_are_refused_before_anything_is_held(
    redis: Any, item: Any, options: dict[str, Any], message: str
) -> None:
    arguments = {"group": "g", **options}
    with pytest.raises(ValidationError, match=message):
        enqueue_grouped(AGG, item, client=redis, **arguments)
    assert redis.keys("kit:agg:*") == []


def test_an_aggregator_name_with_the_separator_is_refused(redis: Any) -> None:
    with pytest.raises(ValidationError, match="aggregator must be"):
        enqueue_grouped("a|b", 1, group="g", client=redis)


def _batches(redis: Any, group: str) -> list[list[int]]:
    return [json.loads(raw) for raw in redis.lrange(f"test:batches:{group}", 0, -1)]


@pytest.mark.e2e
def test_25_members_reach_the_aggregator_as_10_10_and_5_across_a_worker_restart(
    start_worker: Any, redis: Any
) -> None:
    def hold(numbers: range) -> None:
        for n in numbers:
            # A grace period longer than the restart, so only size flushes the first two.
            enqueue_grouped(AGG, n, group="digest", max_size=10, grace=10, max_delay=120)

    worker = start_worker(concurrency=1)
    hold(range(12))
    eventually(lambda: len(_batches(redis, "digest")) == 1, 30)
    worker.signal(signal.SIGTERM)
    assert worker.process.wait(60) == 0

    hold(range(12, 25))  # 2 + 13 waiting while no worker runs
    start_worker(concurrency=1)
    eventually(lambda: len(_batches(redis, "digest")) == 3, 60)
    batches = _batches(redis, "digest")
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [n for b in batches for n in b] == list(range(25))  # in order, none lost or repeated
    assert set(redis.keys("kit:agg:*")) <= {"kit:agg:lock"}  # no member or claim left behind
