"""Counting processed tasks from outside the worker, by watching Redis.

Why Redis and not the tasks or Celery events: anything inside the task (a counter, a timestamp)
or an event consumer would add per-task work to exactly what is being measured, and events are
one of the settings under test. kombu keeps a message in its queue list until a worker fetches
it, then in the ``unacked`` hash until the worker acknowledges it, so

    processed = pre-loaded - (LLEN of the queue lists + HLEN unacked)

counts acknowledged messages at no cost to the worker. Both are read by one Lua script: atomic,
so a message moving from list to hash is never seen twice or not at all, and one small reply,
so the poller itself takes little of the CPU it shares with the worker. "Acknowledged" means "done"
with late ack (the kit) and "started" with early ack (stock Celery); for a no-op task the two
are microseconds apart.

The clock starts at the first poll that sees a processed task and stops at the first that sees
none left; the rate is the tasks processed in between over that time, so worker start-up is
excluded and a run's error is at most one poll interval over its whole length. When no poll
saw the run under way (a fast worker, tiny counts, or the poller kept off the CPU on a busy
machine), the clock runs from the last poll that saw nothing done (or from ``spawned_at``)
instead: all tasks over a span that holds the whole run, a lower bound of the rate, flagged
``within_one_poll``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import redis

from benchmarks.core.jsonable import record

__all__ = [
    "POLL_INTERVAL",
    "BenchmarkError",
    "Measurement",
    "QueueProbe",
    "Supervised",
    "measure",
]

POLL_INTERVAL = 0.01  # seconds: at most 0.1% error on a 10 s run, 1% on a 1 s (--quick) one
START_TIMEOUT = 120.0  # seconds for a worker to process its first task (cold imports, mingle)
STALL_TIMEOUT = 30.0  # seconds without progress before a run is declared stuck
UNACKED_KEY = "unacked"  # kombu's Redis transport default (unacked_key)
#: KEYS: the queue lists, then the unacked hash. Returns the messages not yet acknowledged.
_REMAINING_SCRIPT = """
local n = redis.call('HLEN', KEYS[#KEYS])
for i = 1, #KEYS - 1 do n = n + redis.call('LLEN', KEYS[i]) end
return n
"""
#: Dramatiq's Redis broker keeps each message in ``<queue>.msgs`` until it is acknowledged.
#: KEYS: that hash.
_DRAMATIQ_SCRIPT = "return redis.call('HLEN', KEYS[1])"
#: RQ: jobs waiting in the queue list, fetched into its intermediate list, or running (the
#: ``wip`` registry). KEYS: those three.
_RQ_SCRIPT = """
return redis.call('LLEN', KEYS[1]) + redis.call('LLEN', KEYS[2]) + redis.call('ZCARD', KEYS[3])
"""


class Supervised(Protocol):
    """What :func:`measure` needs of a worker (:class:`~benchmarks.core.processes.Worker` or a
    :class:`~benchmarks.core.processes.WorkerGroup`)."""

    def exit_code(self) -> int | None: ...

    def describe(self) -> str: ...

    def log_tail(self, lines: int = ...) -> str: ...


class BenchmarkError(RuntimeError):
    """A run that cannot give a trustworthy number."""


@dataclass(frozen=True)
class Measurement:
    total: int  # tasks pre-loaded
    counted: int  # tasks processed between the clock's start and stop
    elapsed: float  # seconds on the clock
    startup: float  # seconds from spawning the worker to its first processed task
    polls: int
    clock_polls: int = 0  # polls after the one that started the clock (its Redis commands)
    within_one_poll: bool = False  # no poll saw the run under way: the rate is a lower bound

    @property
    def rate(self) -> float:
        return self.counted / self.elapsed

    def as_dict(self) -> dict[str, object]:
        """The fields every run record reports, in the JSON files' names."""
        return record(
            self,
            "rate",
            "counted",
            "total",
            "elapsed_s=elapsed",
            "startup_s=startup",
            "polls",
            "within_one_poll",
        )


class QueueProbe:
    """The number of messages not yet acknowledged: one Lua script over a fixed set of keys
    (kombu's queue lists and unacked hash unless told otherwise).

    :attr:`per_poll` is what one poll costs Redis, by command (``INFO commandstats`` counts
    the commands a script runs too), so a count of the workers' commands can leave it out.
    """

    def __init__(
        self,
        client: redis.Redis,
        queue_keys: Sequence[bytes | str],
        script: str = _REMAINING_SCRIPT,
        extra_keys: Sequence[str] = (UNACKED_KEY,),
        inner: Mapping[str, int] | None = None,
    ) -> None:
        if not queue_keys:
            raise BenchmarkError("no queue lists to watch: nothing was pre-loaded")
        self.client = client
        self.keys = [*queue_keys, *extra_keys]
        self._script = client.register_script(script)
        calls = {"hlen": 1, "llen": len(queue_keys)} if inner is None else dict(inner)
        self.per_poll: dict[str, int] = {"evalsha": 1, **calls}

    @classmethod
    def discover(cls, client: redis.Redis) -> QueueProbe:
        """Watch every list present after the pre-load: the queues the messages went to (not the
        kit's own lists, such as its queues' bells, which hold no messages)."""
        keys = [
            key
            for key in client.scan_iter(count=1000)
            if client.type(key) == b"list" and not key.startswith(b"kit:")
        ]
        return cls(client, sorted(keys))

    @classmethod
    def dramatiq(cls, client: redis.Redis, queue: str) -> QueueProbe:
        keys = [f"dramatiq:{queue}.msgs"]
        return cls(client, keys, _DRAMATIQ_SCRIPT, extra_keys=(), inner={"hlen": 1})

    @classmethod
    def rq(cls, client: redis.Redis, queue: str) -> QueueProbe:
        keys = [f"rq:queue:{queue}", f"rq:queue:{queue}:intermediate", f"rq:wip:{queue}"]
        return cls(client, keys, _RQ_SCRIPT, extra_keys=(), inner={"llen": 2, "zcard": 1})

    def remaining(self) -> int:
        return int(self._script(keys=self.keys))


def measure(
    probe: QueueProbe,
    worker: Supervised,
    total: int,
    *,
    spawned_at: float,
    poll_interval: float = POLL_INTERVAL,
    on_start: Callable[[], object] = lambda: None,
) -> Measurement:
    """Poll until every pre-loaded task is acknowledged; fail fast if the worker cannot.
    ``on_start`` is called once, as the clock starts (the Redis command count's snapshot)."""
    started_at: float | None = None
    idle_at = spawned_at  # the last poll that saw nothing done yet
    start_poll = 0
    done_at_start = 0
    last_remaining = total
    last_progress = time.monotonic()
    polls = 0
    while True:
        remaining = probe.remaining()
        now = time.monotonic()
        polls += 1
        if remaining == total:
            idle_at = now
        if started_at is None and remaining < total:
            started_at, done_at_start, start_poll = now, total - remaining, polls
            on_start()
        if remaining == 0:
            break
        if remaining < last_remaining:
            last_remaining, last_progress = remaining, now
        _check(worker, started_at, now, spawned_at, last_progress, remaining)
        time.sleep(poll_interval)
    assert started_at is not None
    counted = total - done_at_start
    within_one_poll = counted <= 0 or now <= started_at
    if within_one_poll:  # the clock runs over a span that holds the whole run
        started_at, counted, start_poll = idle_at, total, 0
    return Measurement(
        total=total,
        counted=counted,
        elapsed=now - started_at,
        startup=started_at - spawned_at,
        polls=polls,
        clock_polls=polls - start_poll,
        within_one_poll=within_one_poll,
    )


def _check(
    worker: Supervised,
    started_at: float | None,
    now: float,
    spawned_at: float,
    last_progress: float,
    remaining: int,
) -> None:
    code = worker.exit_code()
    if code is not None:
        problem = f"exited with {code} with {remaining} tasks left"
    elif started_at is None and now - spawned_at > START_TIMEOUT:
        problem = f"processed nothing within {START_TIMEOUT:.0f} s"
    elif started_at is not None and now - last_progress > STALL_TIMEOUT:
        problem = f"made no progress for {STALL_TIMEOUT:.0f} s with {remaining} tasks left"
    else:
        return
    raise BenchmarkError(f"worker `{worker.describe()}` {problem}:\n{worker.log_tail()}")
