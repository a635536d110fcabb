"""Scenario 5, load: 50,000 ``tests.count`` tasks across ``critical``, ``default`` and ``low``,
published by 4 producer processes at once and consumed by 2 worker processes, on a Redis of the
test's own (AOF, ``appendfsync everysec``) so the suite's shared server is not flooded.

Without a fault every task runs exactly once. With one worker SIGKILLed a third of the way
through (and a replacement started), every task runs at least once, and the duplicates are
bounded by what the dead worker held. Each task counts its own runs in Redis.

These take minutes, so they are marked ``long`` and deselected by default (pyproject's
``addopts``): ``.venv/bin/pytest -m long tests/reliability``.

The module is also the producer: ``python -m tests.reliability.test_load URL INDEX COUNT``
publishes its share once it reads ``go`` on stdin (see :class:`_Producer`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py

from project.up.redis_server import RedisServer
from tests.support.polling import eventually
from tests.support.workers import ROOT, WorkerProcess

from .conftest import Ledger

TOTAL = 50_000
PRODUCERS = 4
QUEUES = ("critical", "default", "low")
PRODUCER_MODULE = "tests.reliability.test_load"

# Two worker processes on a 2-CPU machine. Each worker's main process fetches, acknowledges and
# sends events; its pool children spend most of a no-op task waiting on Redis round trips
# (INCR, the result, the ack). Two children per worker (4 in all, the kit's default of one per
# CPU) keep both CPUs busy through those waits without thrashing a machine shared with others.
CONCURRENCY = 2
# The kit's default (one message per child). Prefetching more buys ~10 % on no-op tasks here
# (README benchmarks, within noise) and widens what a dead worker takes down with it.
PREFETCH = 1
# With late acknowledgement a running task's message stays unacknowledged, so kombu's QoS caps
# everything a worker holds (running and reserved alike) at prefetch x concurrency messages: those
# are the only ones in `unacked` a SIGKILL can leave behind, and the only ones that can run twice.
KILLED_WORKER_HOLDS = PREFETCH * CONCURRENCY

DEADLINE = 1200.0  # seconds from "go" until all 50,000 must have run (a busy 2-CPU machine)
# No new completion for this long ends the wait: longer than the visibility timeout (60 s) plus
# a restore sweep (5 s), after which a dead worker's messages are back in their queues.
STALL = 180.0
POLL_INTERVAL = 1.0


def _keys(index: int, count: int) -> list[str]:
    return [f"load-{index}-{i}" for i in range(count)]


def _shares() -> list[int]:
    base, extra = divmod(TOTAL, PRODUCERS)
    return [base + (1 if i < extra else 0) for i in range(PRODUCERS)]


# -- the producer process --------------------------------------------------------------------


def _produce(url: str, index: int, count: int) -> None:
    """Publish ``count`` ``tests.count`` tasks, round-robin over the three queues."""
    from project.application import create_app
    from project.settings import load_settings

    app = create_app(load_settings({"REDIS_URL": url}))
    keys = _keys(index, count)
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=3)
        print("ready", flush=True)
        sys.stdin.readline()  # "go": the producers start publishing together
        started = time.monotonic()
        for i, key in enumerate(keys):
            # The key is the task id too, so worker logs show which task ran where.
            app.send_task(
                "tests.count",
                (key,),
                task_id=key,
                queue=QUEUES[i % len(QUEUES)],
                producer=producer,
            )
        print(f"sent {len(keys)} in {time.monotonic() - started:.3f}", flush=True)


class _Producer:
    """One producer subprocess; its output (merged) goes to a log file."""

    def __init__(self, url: str, index: int, count: int, log: Path) -> None:
        self.index, self.log = index, log
        env = dict(os.environ)
        env["REDIS_URL"] = url  # read when the child first imports `project`
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        with log.open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", PRODUCER_MODULE, url, str(index), str(count)],
                cwd=str(ROOT),
                env=env,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self) -> bool:
        if "ready" in self.output.splitlines():
            return True
        if self.process.poll() is not None:
            raise AssertionError(
                f"producer {self.index} exited {self.process.returncode}:\n{self.output[-4000:]}"
            )
        return False

    def go(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("go\n")
        self.process.stdin.close()

    def result(self, timeout: float) -> tuple[int, float]:
        """(tasks sent, seconds spent publishing), once the process has exited cleanly."""
        code = self.process.wait(timeout)
        for line in self.output.splitlines():
            if line.startswith("sent "):
                _, sent, _, seconds = line.split()
                if code == 0:
                    return int(sent), float(seconds)
        raise AssertionError(f"producer {self.index} exited {code}:\n{self.output[-4000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# -- observing Redis ---------------------------------------------------------------------------


def _done(client: Any, counters: list[str]) -> int:
    """How many of ``counters`` are set (their task ran at least once)."""
    done = 0
    for start in range(0, len(counters), 10_000):
        done += sum(1 for v in client.mget(counters[start : start + 10_000]) if v)
    return done


def _wait_until(client: Any, counters: list[str], target: int, deadline: float) -> int:
    """Poll until ``target`` counters are set, the deadline passes, or progress stalls."""
    done, last_progress = -1, time.monotonic()
    while True:
        now_done = _done(client, counters)
        now = time.monotonic()
        if now_done >= target:
            return now_done
        if now_done > done:
            done, last_progress = now_done, now
        if now - last_progress > STALL or now > deadline:
            return now_done  # the caller's ledger and assertion say what is missing
        time.sleep(POLL_INTERVAL)


def _broker_state(client: Any, counters: list[str], workers: list[WorkerProcess]) -> str:
    """Where unprocessed messages could be: queue lists, kombu's ``unacked`` hash, the kit's
    schedule and archive; a sample of keys never counted; each worker's last output."""
    lists = {k: client.llen(k) for k in client.scan_iter(count=1000, _type="list")}
    values = client.mget(counters) if counters else []
    missing = [
        c.removeprefix("test:count:") for c, v in zip(counters, values, strict=True) if not v
    ]
    twice = [
        c.removeprefix("test:count:")
        for c, v in zip(counters, values, strict=True)
        if v and int(v) > 1
    ]
    tails = "\n".join(
        f"--- worker {w.nodename} (exit {w.process.poll()}):\n{w.output[-3000:]}" for w in workers
    )
    return (
        f"queue lists={lists} unacked={client.hlen('unacked')} "
        f"unacked_index={client.zcard('unacked_index')} scheduled={client.zcard('kit:scheduled')} "
        f"archived={client.zcard('kit:archived')}\n"
        f"never ran ({len(missing)}): {_whereabouts(missing, workers)}\n"
        f"ran twice or more ({len(twice)}): {_whereabouts(twice, workers)}\n{tails}"
    )


# -- the scenarios -----------------------------------------------------------------------------


@dataclass
class _Run:
    keys: list[str]
    counters: list[str]
    client: Any
    workers: list[WorkerProcess]
    sent: int = 0
    published_in: float = 0.0
    processed_in: float = 0.0


@pytest.fixture
def load_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, AOF on (``appendfsync everysec``), as in production."""
    server = RedisServer(tmp_path / "load-redis", appendonly=True).start()
    yield server
    server.kill()


def _report(capsys: pytest.CaptureFixture[str], line: str) -> None:
    """One line in the captured output (shown on failure) and, live, on the terminal."""
    print(line)
    with capsys.disabled():
        print(f"\n{line}")


def _held(client: Any) -> set[str]:
    """The task ids (each a task's key here) of the messages in kombu's ``unacked`` hash."""
    return {json.loads(value)[0]["headers"]["id"] for _, value in client.hscan_iter("unacked")}


def _whereabouts(keys: list[str], workers: list[WorkerProcess]) -> str:
    """For each key (its task id), how often each worker logged it received and succeeded."""
    found = []
    for key in keys[:20]:
        seen = []
        for worker in workers:
            output = worker.output
            received = output.count(f"tests.count[{key}] received")
            succeeded = output.count(f"tests.count[{key}] succeeded")
            if received or succeeded:
                seen.append(f"{worker.nodename} received {received} succeeded {succeeded}")
        found.append(f"{key}: {', '.join(seen) or 'in no worker log'}")
    return "; ".join(found)


def _run_load(
    server: RedisServer,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    during: Callable[[_Run], None] | None = None,
) -> _Run:
    """Start 2 workers and 4 producers, publish 50,000 tasks at once, wait for them to run.

    ``during`` (the fault) is called with the run once a third of the tasks have run.
    """
    shares = _shares()
    keys = [k for i, n in enumerate(shares) for k in _keys(i, n)]
    counters = [f"test:count:{k}" for k in keys]
    producers = [
        _Producer(server.url, i, n, tmp_path / f"producer-{i}.log") for i, n in enumerate(shares)
    ]
    try:
        worker_options = {
            "concurrency": CONCURRENCY,
            "extra_args": [f"--prefetch-multiplier={PREFETCH}"],
            "env": {"REDIS_URL": server.url},
        }
        workers = [start_worker(**worker_options) for _ in range(2)]
        run = _Run(
            keys, counters, redis_py.Redis.from_url(server.url, decode_responses=True), workers
        )
        eventually(lambda: all(p.ready() for p in producers), 120, interval=0.2)

        started = time.monotonic()
        deadline = started + DEADLINE
        for producer in producers:
            producer.go()
        if during is not None:
            reached = _wait_until(run.client, counters, TOTAL // 3, deadline)
            if reached >= TOTAL // 3:
                during(run)
                run.workers.append(start_worker(**worker_options))  # the replacement
        _wait_until(run.client, counters, TOTAL, deadline)
        run.processed_in = time.monotonic() - started

        results = [p.result(timeout=60) for p in producers]
        run.sent = sum(sent for sent, _ in results)
        run.published_in = max(seconds for _, seconds in results)
        return run
    finally:
        for producer in producers:
            producer.kill()


def _rate_line(name: str, run: _Run, wall: float) -> str:
    return (
        f"{name}: {run.sent} tasks published by {PRODUCERS} producers in "
        f"{run.published_in:.1f}s ({run.sent / max(run.published_in, 1e-9):.0f}/s); all run by "
        f"2 workers x {CONCURRENCY} in {run.processed_in:.1f}s: "
        f"{TOTAL / max(run.processed_in, 1e-9):.0f} tasks/s; wall {wall:.1f}s"
    )


@pytest.mark.e2e
@pytest.mark.long
@pytest.mark.timeout(1800)  # DEADLINE plus start-up, on a 2-CPU machine shared with others
def test_fifty_thousand_tasks_from_four_producers_run_exactly_once(
    load_redis: RedisServer,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    ledger: Ledger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    began = time.monotonic()
    run = _run_load(load_redis, start_worker, tmp_path)
    processed, lost, duplicated = ledger.count_runs(run.client, run.keys)
    ledger.record(run.sent, processed, lost, duplicated)
    _report(capsys, _rate_line("load, no fault", run, time.monotonic() - began))

    assert run.sent == TOTAL
    assert (processed, lost, duplicated) == (TOTAL, 0, 0), _broker_state(
        run.client, run.counters, run.workers
    )
    run.client.close()


@pytest.mark.e2e
@pytest.mark.long
@pytest.mark.timeout(1800)
def test_fifty_thousand_tasks_run_at_least_once_when_a_worker_is_killed(
    load_redis: RedisServer,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    ledger: Ledger,
    capsys: pytest.CaptureFixture[str],
) -> None:
    began = time.monotonic()
    killed: list[str] = []
    held: set[str] = set()

    def kill_one_worker(run: _Run) -> None:
        victim = run.workers[0]
        done = _done(run.client, run.counters)
        victim.kill()  # SIGKILL to the worker's process group: main process and pool children
        # The dead worker's messages stay in `unacked` until their lease runs out (60 s):
        # read now, they are among what both workers hold.
        held.update(_held(run.client))
        killed.append(f"killed {victim.nodename} at {done} done, {len(held)} unacked")

    run = _run_load(load_redis, start_worker, tmp_path, during=kill_one_worker)
    processed, lost, duplicated = ledger.count_runs(run.client, run.keys, interrupted=held)
    ledger.record(run.sent, processed, lost, duplicated, ledger.reruns(run.client, held))
    runs = run.client.mget(run.counters)
    twice = [k for k, v in zip(run.keys, runs, strict=True) if v and int(v) > 1]
    _report(
        capsys,
        _rate_line("load, one worker SIGKILLed", run, time.monotonic() - began)
        + f"; {'; '.join(killed) or 'no worker killed'}; {duplicated} duplicated"
        + (f" ({_whereabouts(twice, run.workers)})" if twice else ""),
    )

    assert killed, f"a third of the tasks never ran: {_broker_state(run.client, [], run.workers)}"
    assert run.sent == TOTAL
    # At least once: nothing lost, whatever the dead worker held comes back.
    assert (processed, lost) == (TOTAL, 0), _broker_state(run.client, run.counters, run.workers)
    # Only the messages the dead worker held can run twice (at most prefetch x concurrency of
    # them: the ones in `unacked` at its death); no other task runs twice, none three times.
    assert duplicated == 0, _broker_state(run.client, run.counters, run.workers)
    assert ledger.reruns(run.client, held) <= KILLED_WORKER_HOLDS
    run.client.close()


if __name__ == "__main__":
    _produce(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
