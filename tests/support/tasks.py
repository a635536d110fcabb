"""Tasks the tests run on the kit's app. Each records what happened in Redis, under ``test:``."""

from __future__ import annotations

import os
import time
from datetime import datetime
from functools import lru_cache
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from project import PermanentError, TransientError, app
from project.lifecycle.kit import default_kit


def _redis() -> Any:
    return default_kit().redis


@app.task(name="tests.record_queue", bind=True)
def record_queue(self: Any, label: str = "") -> None:
    """A no-op that appends the queue it was served from (and a label) to ``test:served``."""
    queue = (self.request.delivery_info or {}).get("routing_key")
    _redis().rpush("test:served", f"{queue}:{label}" if label else str(queue))


@app.task(name="tests.noop")
def noop() -> None:
    return None


@app.task(name="tests.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="tests.mark")
def mark(key: str) -> None:
    _redis().set(f"test:mark:{key}", "1")


@app.task(name="tests.flaky", bind=True, max_retries=3)
def flaky(self: Any, key: str, failures: int) -> int:
    """Raises TransientError ``failures`` times, then succeeds; logs each attempt's time and
    the time its message was due (its ETA: "none" for the first attempt)."""
    client = _redis()
    client.rpush(f"test:attempts:{key}", repr(time.time()))
    eta = self.request.eta
    due = datetime.fromisoformat(eta).timestamp() if isinstance(eta, str) else None
    client.rpush(f"test:etas:{key}", repr(due) if due is not None else "none")
    if self.request.retries < failures:
        raise TransientError(f"attempt {self.request.retries + 1} failed, try again")
    return int(self.request.retries)


@app.task(name="tests.connection_refused", bind=True, max_retries=2)
def connection_refused(self: Any, key: str) -> None:
    _redis().rpush(f"test:attempts:{key}", repr(time.time()))
    raise ConnectionRefusedError("[Errno 111] Connection refused")


@app.task(name="tests.permanent")
def permanent(key: str) -> None:
    _redis().rpush(f"test:attempts:{key}", repr(time.time()))
    raise PermanentError("payload names a file that does not exist")


@app.task(name="tests.buggy")
def buggy(key: str) -> None:
    _redis().rpush(f"test:attempts:{key}", repr(time.time()))
    raise KeyError("width")


@app.task(name="tests.on_low", default_queue="low")
def on_low() -> str:
    return "low"


@app.task(name="tests.sleepy", soft_time_limit=0.5, time_limit=5)
def sleepy(seconds: float) -> None:
    time.sleep(seconds)


@app.task(name="tests.stubborn", soft_time_limit=0.5, time_limit=1.5)
def stubborn(seconds: float) -> None:
    """Ignores its soft time limit, so only the hard limit stops it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except SoftTimeLimitExceeded:
            continue


@app.task(name="tests.my_priority", bind=True)
def my_priority(self: Any, *_: Any) -> int:
    """Returns the priority its message arrived with."""
    return int((self.request.delivery_info or {}).get("priority", -1))


@app.task(name="tests.log_something")
def log_something(message: str) -> None:
    from celery.utils.log import get_task_logger

    get_task_logger("tests").warning(message)


@app.task(name="tests.retry_later", bind=True, max_retries=1)
def retry_later(self: Any, key: str, delay: float = 2.0) -> str:
    """Fails its first attempt and retries after ``delay`` seconds: a wide retry window."""
    _redis().rpush(f"test:attempts:{key}", repr(time.time()))
    if self.request.retries == 0:
        raise self.retry(countdown=delay)
    return "done"


@app.task(name="tests.retry_keeping_record", bind=True, max_retries=1)
def retry_keeping_record(self: Any, key: str, delay: float, seconds: float = 0.0) -> str:
    """Counts its attempts in ``test:attempts:<key>``. The first keeps a copy of its message's
    ``unacked`` record (what a lost acknowledgement would leave there) in
    ``test:record:<key>`` and retries after ``delay`` seconds; the second runs ``seconds``."""
    client = _redis()
    client.rpush(f"test:attempts:{key}", str(self.request.retries))
    if self.request.retries == 0:
        tag = (self.request.properties or {})["delivery_tag"]
        client.set(f"test:record:{key}", client.hget("unacked", tag) or b"")
        client.set(f"test:tag:{key}", tag)
        raise self.retry(countdown=delay)
    time.sleep(seconds)
    client.rpush(f"test:finishes:{key}", str(self.request.retries))
    return "done"


@app.task(
    name="tests.exclusive", bind=True, single_flight=True, single_flight_ttl=2.0, max_retries=3
)
def exclusive(self: Any, key: str, seconds: float) -> str:
    """Single-flight: records when it ran, so tests can check runs never overlap."""
    client = _redis()
    client.rpush(f"test:runs:{key}", f"start {time.time()!r} {self.request.id}")
    time.sleep(seconds)
    client.rpush(f"test:runs:{key}", f"end {time.time()!r} {self.request.id}")
    return str(self.request.id)


@app.task(name="tests.exclusive_skip", bind=True, single_flight=True, single_flight_busy="skip")
def exclusive_skip(self: Any, key: str, seconds: float) -> str:
    _redis().rpush(f"test:runs:{key}", str(self.request.id))
    time.sleep(seconds)
    return str(self.request.id)


@app.task(name="tests.count")
def count(key: str) -> int:
    """Counts its runs in ``test:count:<key>``: exactly-once checks read it."""
    return int(_redis().incr(f"test:count:{key}"))


@app.task(name="tests.count_elsewhere")
def count_elsewhere(key: str) -> int:
    """``tests.count`` for scenarios that stop the broker's Redis. It needs that Redis (a PING,
    so it fails, and is retried, while Redis is down), then counts its run in
    ``test:count:<key>`` on ``TEST_COUNT_REDIS_URL``, a server no fault touches. A count kept
    on the stopped server is not a count of runs: Redis can apply an INCR and shut down before
    it replies, and the attempt, which saw a connection error, is rightly retried."""
    _redis().ping()
    return int(_counting_redis().incr(f"test:count:{key}"))


@lru_cache(maxsize=1)
def _counting_redis() -> Any:
    import redis as redis_py

    return redis_py.Redis.from_url(os.environ["TEST_COUNT_REDIS_URL"])


@app.task(name="tests.tick", bind=True)
def tick(self: Any, key: str) -> None:
    """Records when it ran in ``test:ticks:<key>``, and when it was published (the kit's
    publish-time stamp: when beat fired it) in ``test:ticks:<key>:published``."""
    from project.broker.queues import PUBLISHED_AT_HEADER

    client = _redis()
    client.rpush(f"test:ticks:{key}", repr(time.time()))
    published = self.request.get(PUBLISHED_AT_HEADER)
    if isinstance(published, int | float):
        client.rpush(f"test:ticks:{key}:published", repr(float(published)))


@app.task(name="tests.slow_mark")
def slow_mark(key: str, seconds: float) -> str:
    """Records each start and each finish, so tests can count (re)deliveries."""
    client = _redis()
    client.rpush(f"test:starts:{key}", repr(time.time()))
    time.sleep(seconds)
    client.rpush(f"test:finishes:{key}", repr(time.time()))
    return key


@app.task(name="tests.count_slowly")
def count_slowly(key: str, seconds: float) -> int:
    time.sleep(seconds)
    return int(_redis().incr(f"test:count:{key}"))


@app.task(name="tests.total")
def total(values: list[int]) -> int:
    """A chord callback: the sum of its header's results."""
    return sum(values)


@app.task(name="tests.collect")
def collect(items: list[Any], group: str = "") -> int:
    """An aggregator: appends each batch it gets (as JSON) to ``test:batches:<group>``."""
    import json

    _redis().rpush(f"test:batches:{group}", json.dumps(items))
    return len(items)


@app.task(name="tests.hold")
def hold(item: Any, group: str, max_size: int) -> int:
    """Holds ``item`` for ``tests.collect`` from inside a worker (its span is the member's)."""
    from project import enqueue_grouped

    return enqueue_grouped("tests.collect", item, group=group, max_size=max_size)


@app.task(name="tests.start_workflow")
def start_workflow() -> str:
    """Runs chain(add(1, 1), group(add(+10), add(+20)), total) from inside a worker, so the
    workflow's own span is exported too; returns the workflow id."""
    from project.workflows.canvas import chain, group, run, step

    canvas = chain(
        step("tests.add", 1, 1),
        group(step("tests.add", 10), step("tests.add", 20)),
        step("tests.total"),
    )
    return run(canvas).id


@app.task(name="tests.crash", max_retries=2)
def crash(key: str) -> None:
    """A poison pill: counts its start, then kills the pool process running it."""
    import os
    import signal

    _redis().rpush(f"test:starts:{key}", os.getpid())
    os.kill(os.getpid(), signal.SIGKILL)


@app.task(name="tests.spawn")
def spawn(x: int) -> str:
    """Publishes ``tests.add`` from inside a running task (Celery records this one as its
    parent); returns the new task's id."""
    return str(add.delay(x, x).id)


@app.task(name="tests.frozen_objects")
def frozen_objects() -> int:
    """How many objects the process running it has frozen out of the garbage collector's way."""
    import gc

    return gc.get_freeze_count()
