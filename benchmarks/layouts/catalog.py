"""Worker layouts the processing and latency benchmarks compare, and how each one runs.

A layout is a framework (stock Celery, the kit, Dramatiq, RQ) plus the processes that make up
its workers on this machine: the command line of each, its environment, and for the kit any
Celery settings it changes through :mod:`benchmarks.throughput.overrides`. Each process is
started with :class:`~benchmarks.core.processes.Worker` in its own process group and killed with it.

:data:`LAYOUTS` are the ones the suite runs. :data:`CANDIDATES` are the kit layouts measured to
choose :data:`RECOMMENDED` (run them with ``python -m benchmarks processing --layout KEY``);
the README records the comparison and the choice.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis as redis_lib

from benchmarks.core.bodies import URL_ENV as STAMP_URL_ENV
from benchmarks.core.measure import BenchmarkError, QueueProbe
from benchmarks.core.processes import PrivateRedis, Worker, WorkerGroup, child_env
from benchmarks.layouts.publishers import QUEUE, Framework
from benchmarks.throughput import overrides
from benchmarks.throughput.plain_app import BROKER_URL_ENV
from benchmarks.throughput.scenario import KIT_TASKS_MODULE, vet_worker_log

__all__ = [
    "CANDIDATES",
    "LAYOUTS",
    "RECOMMENDED",
    "Layout",
    "available",
    "probe_for",
    "select_layouts",
    "start_workers",
    "vet",
]

_ERROR_MARKS: dict[Framework, tuple[str, ...]] = {
    "plain": ("ERROR/", "CRITICAL/"),
    "kit": ("ERROR/", "CRITICAL/"),
    "dramatiq": ("[ERROR]", "[CRITICAL]"),
    "rq": ("Traceback",),
}
_MODULES: dict[Framework, str] = {
    "plain": "celery",
    "kit": "celery",
    "dramatiq": "dramatiq",
    "rq": "rq.cli",
}


@dataclass(frozen=True)
class Layout:
    key: str
    label: str
    framework: Framework
    shape: str  # pool, processes x concurrency, prefetch, events: for the table
    argv: tuple[tuple[str, ...], ...]  # one command line per process, after python -m <module>
    noop_rate: float  # expected tasks/s on a 2-CPU machine, to size a run (see counts())
    sleep_rate: float
    kit_env: Mapping[str, str] = field(default_factory=dict)
    conf: Mapping[str, overrides.Scalar] = field(default_factory=dict)

    @property
    def requires(self) -> str | None:
        return self.framework if self.framework in ("dramatiq", "rq") else None

    def counts(self, seconds: float, minimum: int) -> tuple[int, int]:
        """(no-op, sleep) tasks for phases of about ``seconds`` each at the expected rates."""
        return (
            max(minimum, round(self.noop_rate * seconds)),
            max(minimum, round(self.sleep_rate * seconds)),
        )

    def env(self, redis_url: str) -> dict[str, str]:
        extra = {STAMP_URL_ENV: redis_url}
        if self.framework == "kit":
            extra.update({"REDIS_URL": redis_url, "KIT_IMPORTS": KIT_TASKS_MODULE, **self.kit_env})
            if self.conf:
                extra[overrides.ENV_VAR] = overrides.encode(self.conf)
        elif self.framework == "rq":
            extra["RQ_REDIS_URL"] = redis_url
        else:  # stock Celery and Dramatiq read the same variable (benchmarks.*_tasks)
            extra[BROKER_URL_ENV] = redis_url
        return child_env(extra)


_PLAIN = ("-A", "benchmarks.throughput.plain_app", "worker")
_KIT = ("-A", "project", "worker")
_NO_EVENTS: dict[str, overrides.Scalar] = {
    "worker_send_task_events": False,
    "task_send_sent_event": False,
}
_PREFETCH_4 = {"KIT_PREFETCH_MULTIPLIER": "4"}


def _kit_processes(count: int, *args: str) -> tuple[tuple[str, ...], ...]:
    """``count`` ``celery worker`` processes with distinct node names."""
    if count == 1:
        return ((*_KIT, *args),)
    return tuple((*_KIT, "-n", f"bench{i + 1}@%h", *args) for i in range(count))


#: The kit layouts tried for throughput. Only pool, processes, concurrency, prefetch and events
#: change; late ack, results, time limits and the rest of the safe defaults stay.
CANDIDATES: tuple[Layout, ...] = (
    Layout(
        "kit-prefork-fast",
        "kit, prefork, prefetch 4, events off",
        "kit",
        "prefork, 1 x 2 processes, prefetch 4, events off",
        _kit_processes(1),
        500,
        190,
        kit_env=_PREFETCH_4,
        conf=_NO_EVENTS,
    ),
    Layout(
        "kit-prefork-8",
        "kit, prefork 8, prefetch 4, events off",
        "kit",
        "prefork, 1 x 8 processes, prefetch 4, events off",
        _kit_processes(1, "--concurrency", "8"),
        450,
        600,
        kit_env=_PREFETCH_4,
        conf=_NO_EVENTS,
    ),
    Layout(
        "kit-threads-8",
        "kit, threads 8, prefetch 4, events off",
        "kit",
        "threads, 1 process x 8 threads, prefetch 4, events off",
        _kit_processes(1, "--pool", "threads", "--concurrency", "8"),
        500,
        500,
        kit_env=_PREFETCH_4,
        conf=_NO_EVENTS,
    ),
    Layout(
        "kit-threads-2x8",
        "kit, 2 x threads 8, prefetch 4, events off",
        "kit",
        "threads, 2 processes x 8 threads, prefetch 4, events off",
        _kit_processes(2, "--pool", "threads", "--concurrency", "8"),
        700,
        700,
        kit_env=_PREFETCH_4,
        conf=_NO_EVENTS,
    ),
    Layout(
        "kit-solo-2",
        "kit, 2 x solo, prefetch 4, events off",
        "kit",
        "solo, 2 processes x 1, prefetch 4, events off",
        _kit_processes(2, "--pool", "solo"),
        700,
        150,
        kit_env=_PREFETCH_4,
        conf=_NO_EVENTS,
    ),
)
RECOMMENDED = "kit-threads-2x8"

LAYOUTS: tuple[Layout, ...] = (
    Layout(
        "plain",
        "plain Celery defaults",
        "plain",
        "prefork, 1 x 2 processes (one per CPU), prefetch 4, events off",
        (_PLAIN,),
        700,
        190,
    ),
    Layout(
        "kit",
        "kit default worker",
        "kit",
        "prefork, 1 x 2 processes, prefetch 1, events on (`celery -A project worker`)",
        (_KIT,),
        300,
        150,
    ),
    *(
        Layout(
            c.key,
            f"kit recommended ({c.label.removeprefix('kit, ')})",
            c.framework,
            c.shape,
            c.argv,
            c.noop_rate,
            c.sleep_rate,
            c.kit_env,
            c.conf,
        )
        for c in CANDIDATES
        if c.key == RECOMMENDED
    ),
    Layout(
        "dramatiq",
        "Dramatiq (reference)",
        "dramatiq",
        "`dramatiq` CLI defaults: 2 processes x 8 threads",
        (("benchmarks.layouts.dramatiq_tasks", "--processes", "2", "--threads", "8"),),
        1000,
        700,
    ),
    Layout(
        "rq",
        "RQ (reference)",
        "rq",
        "2 x `rq worker` (forks a work horse per job)",
        (("worker", QUEUE), ("worker", QUEUE)),
        60,
        50,
    ),
    Layout(
        "rq-simple",
        "RQ SimpleWorker pool (reference)",
        "rq",
        "`rq worker-pool -n 2 -w rq.SimpleWorker` (no fork per job)",
        (("worker-pool", "-n", "2", "-w", "rq.SimpleWorker", QUEUE),),
        400,
        120,
    ),
)


def select_layouts(keys: Sequence[str]) -> tuple[Layout, ...]:
    """The named layouts (from :data:`LAYOUTS` and :data:`CANDIDATES`); the suite's when none
    is named."""
    if not keys:
        return LAYOUTS
    known = {layout.key: layout for layout in (*LAYOUTS, *CANDIDATES)}
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise BenchmarkError(f"unknown layout(s) {unknown}; known: {sorted(known)}")
    return tuple(known[key] for key in dict.fromkeys(keys))


def available(layouts: Sequence[Layout]) -> tuple[list[Layout], list[Layout]]:
    """(runnable, skipped): Dramatiq and RQ are optional (the ``bench`` extra)."""
    runnable: list[Layout] = []
    skipped: list[Layout] = []
    for layout in layouts:
        missing = layout.requires and importlib.util.find_spec(layout.requires) is None
        (skipped if missing else runnable).append(layout)
    return runnable, skipped


def start_workers(layout: Layout, redis_url: str, workdir: Path, tag: str) -> WorkerGroup:
    env = layout.env(redis_url)
    workers: list[Worker] = []
    try:
        for index, args in enumerate(layout.argv):
            workers.append(
                Worker(
                    args,
                    env,
                    workdir / f"{tag}-{index}.log",
                    module=_MODULES[layout.framework],
                    error_marks=_ERROR_MARKS[layout.framework],
                )
            )
    except BaseException:
        for worker in workers:
            worker.kill()
        raise
    return WorkerGroup(workers)


def probe_for(layout: Layout, client: redis_lib.Redis) -> QueueProbe:
    """Counts the tasks not yet done; for Celery, call it after the pre-load (it watches the
    lists the messages went to)."""
    if layout.framework == "dramatiq":
        return QueueProbe.dramatiq(client, QUEUE)
    if layout.framework == "rq":
        return QueueProbe.rq(client, QUEUE)
    return QueueProbe.discover(client)


def vet(layout: Layout, redis: PrivateRedis, errors: Sequence[str]) -> tuple[str, ...]:
    """Raise if a task failed (so 'done' may not mean 'ran'); else the non-fatal log errors."""
    if layout.framework in ("plain", "kit"):
        return vet_worker_log(redis, layout.key, errors)
    if layout.framework == "dramatiq":
        failed = int(redis.client.hlen(f"dramatiq:{QUEUE}.XQ.msgs"))
    else:
        failed = int(redis.client.zcard(f"rq:failed:{QUEUE}"))
    if failed or errors:
        raise BenchmarkError(
            f"{layout.key}: {failed} failed task(s); worker errors:\n" + "\n".join(errors[:10])
        )
    return ()
