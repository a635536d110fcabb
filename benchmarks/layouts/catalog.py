"""Worker layouts the processing, latency and memory benchmarks compare, and how each runs.

A layout is a framework (stock Celery, the kit, Dramatiq, RQ) plus the processes that make up
its workers on this machine: the command line of each, its environment, and for the kit any
Celery settings it changes through :mod:`benchmarks.throughput.overrides` (stock Celery's
only knob here is a Redis result backend, ``plain-results``: the kit stores results, so the
fair comparison of Redis work has one too). Every framework runs
the same task bodies (:mod:`benchmarks.core.bodies`): stock Celery's and the kit's apps are the
throughput benchmark's (:mod:`benchmarks.throughput.plain_app`,
:mod:`benchmarks.throughput.kit_tasks`), Dramatiq's actors are
:mod:`benchmarks.layouts.dramatiq_tasks`, RQ imports the bodies by dotted path. Each process is
started with :class:`~benchmarks.core.processes.Worker` in its own process group and killed
with it.

:data:`LAYOUTS` are the ones the suite runs. :data:`CANDIDATES` are the kit layouts measured to
choose :data:`RECOMMENDED` and the default worker's pool (run them with ``python -m benchmarks
all --only processing --layout KEY``); the README records the comparison and the choice. Two
families: ``kit-default-*`` change only the pool and its size of ``celery -A project worker``
(prefetch, events and the rest stay the kit's defaults, whatever they are at the time), the
question being what the default pool should be; the others also set prefetch 4 and events
off, the throughput layouts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import redis as redis_lib

from benchmarks.core.bodies import BROKER_URL_ENV, QUEUE, RESULT_BACKEND_ENV
from benchmarks.core.bodies import URL_ENV as STAMP_URL_ENV
from benchmarks.core.measure import BenchmarkError, QueueProbe
from benchmarks.core.processes import PrivateRedis, Worker, WorkerGroup, child_env
from benchmarks.throughput import overrides
from benchmarks.throughput.scenario import celery_worker_env, vet_worker_log

__all__ = [
    "CANDIDATES",
    "LAYOUTS",
    "RECOMMENDED",
    "Framework",
    "Layout",
    "probe_for",
    "select_layouts",
    "start_workers",
    "vet",
]

Framework = Literal["plain", "kit", "dramatiq", "rq"]
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
    # Expected tasks/s on a 2-CPU machine, to size a run (see counts()): the figures of recent
    # runs, so that a fast layout's phase is not over before its threads have all started
    # (at the rates of an earlier round, the recommended layout's no-op phase lasted 0.4-0.7 s).
    noop_rate: float
    sleep_rate: float
    cpu_rate: float
    kit_env: Mapping[str, str] = field(default_factory=dict)
    conf: Mapping[str, overrides.Scalar] = field(default_factory=dict)
    results: bool = False  # stock Celery only: a Redis result backend (the kit always has one)

    @property
    def requires(self) -> str | None:
        return self.framework if self.framework in ("dramatiq", "rq") else None

    def counts(self, seconds: float, minimum: int) -> dict[str, int]:
        """Tasks per kind (noop, sleep, cpu) for phases of about ``seconds`` each at the
        expected rates."""
        rates = {"noop": self.noop_rate, "sleep": self.sleep_rate, "cpu": self.cpu_rate}
        return {kind: max(minimum, round(rate * seconds)) for kind, rate in rates.items()}

    def env(self, redis_url: str) -> dict[str, str]:
        extra = {STAMP_URL_ENV: redis_url}
        if self.framework in ("plain", "kit"):
            app: Literal["plain", "kit"] = "kit" if self.framework == "kit" else "plain"
            extra.update(celery_worker_env(app, redis_url, self.kit_env, self.conf))
            if self.results:
                extra[RESULT_BACKEND_ENV] = redis_url
        elif self.framework == "rq":
            extra["RQ_REDIS_URL"] = redis_url
        else:  # Dramatiq reads stock Celery's variable
            extra[BROKER_URL_ENV] = redis_url
        return child_env(extra)


_PLAIN = ("-A", "benchmarks.throughput.plain_app", "worker")
_KIT = ("-A", "project", "worker")
_NO_EVENTS: dict[str, overrides.Scalar] = {
    "worker_send_task_events": False,
    "task_send_sent_event": False,
}
_PREFETCH_4 = {"KIT_PREFETCH_MULTIPLIER": "4"}


def _candidate(
    key: str,
    pool: str,
    shape: str,
    processes: int,
    args: tuple[str, ...],
    rates: tuple[int, int, int],
) -> Layout:
    """A kit layout with prefetch 4 and task events off, run as ``processes`` ``celery
    worker`` processes (distinct node names when more than one) with ``args``."""
    if processes == 1:
        argv: tuple[tuple[str, ...], ...] = ((*_KIT, *args),)
    else:
        argv = tuple((*_KIT, "-n", f"bench{i + 1}@%h", *args) for i in range(processes))
    return Layout(
        key,
        f"kit, {pool}, prefetch 4, events off",
        "kit",
        f"{shape}, prefetch 4, events off",
        argv,
        *rates,
        kit_env=_PREFETCH_4,
        conf=_NO_EVENTS,
    )


def _default_pool(
    key: str, shape: str, args: tuple[str, ...], rates: tuple[int, int, int]
) -> Layout:
    """``celery -A project worker`` with ``args`` (the pool and its size) and nothing else
    changed: a candidate for the default worker's pool."""
    return Layout(
        key,
        f"kit default, {shape}",
        "kit",
        f"{shape}, kit defaults otherwise",
        ((*_KIT, *args),),
        *rates,
    )


#: The kit layouts tried. The throughput ones change pool, processes, concurrency, prefetch and
#: events; late ack, results, time limits and the rest of the safe defaults stay. The
#: ``kit-default-*`` ones change the pool only: prefork with more processes than CPUs keeps
#: time limits working (Celery enforces them in prefork only), threads do not.
CANDIDATES: tuple[Layout, ...] = (
    _default_pool("kit-default-prefork-4", "prefork 4", ("--concurrency", "4"), (350, 280, 330)),
    _default_pool("kit-default-prefork-8", "prefork 8", ("--concurrency", "8"), (350, 450, 330)),
    _default_pool(
        "kit-default-threads-8",
        "threads 8",
        ("--pool", "threads", "--concurrency", "8"),
        (400, 400, 180),
    ),
    _candidate("kit-prefork-fast", "prefork", "prefork, 1 x 2 processes", 1, (), (500, 190, 350)),
    _candidate(
        "kit-prefork-8",
        "prefork 8",
        "prefork, 1 x 8 processes",
        1,
        ("--concurrency", "8"),
        (450, 600, 350),
    ),
    _candidate(
        "kit-threads-8",
        "threads 8",
        "threads, 1 process x 8 threads",
        1,
        ("--pool", "threads", "--concurrency", "8"),
        (500, 500, 180),
    ),
    _candidate(
        "kit-threads-2x8",
        "2 x threads 8",
        "threads, 2 processes x 8 threads",
        2,
        ("--pool", "threads", "--concurrency", "8"),
        (700, 700, 330),
    ),
    _candidate(
        "kit-threads-2x16",
        "2 x threads 16",
        "threads, 2 processes x 16 threads",
        2,
        ("--pool", "threads", "--concurrency", "16"),
        (2500, 1600, 180),
    ),
    _candidate(
        "kit-solo-2",
        "2 x solo",
        "solo, 2 processes x 1",
        2,
        ("--pool", "solo"),
        (700, 150, 350),
    ),
)
RECOMMENDED = "kit-threads-2x16"

LAYOUTS: tuple[Layout, ...] = (
    Layout(
        "plain",
        "plain Celery defaults",
        "plain",
        "prefork, 1 x 2 processes (one per CPU), prefetch 4, events off",
        (_PLAIN,),
        700,
        190,
        350,
    ),
    Layout(
        "plain-results",
        "plain Celery, Redis result backend",
        "plain",
        "as plain Celery defaults, plus `result_backend` on the same Redis",
        (_PLAIN,),
        600,
        190,
        350,
        results=True,
    ),
    Layout(
        "kit",
        "kit default worker",
        "kit",
        "prefork, 2 processes per CPU, prefetch 1, events on (`celery -A project worker`)",
        (_KIT,),
        1000,
        300,
        150,
    ),
    *(
        dataclasses.replace(c, label=f"kit recommended ({c.label.removeprefix('kit, ')})")
        for c in CANDIDATES
        if c.key == RECOMMENDED
    ),
    Layout(
        "dramatiq",
        "Dramatiq (reference)",
        "dramatiq",
        "`dramatiq` CLI defaults: 2 processes x 8 threads",
        (("benchmarks.layouts.dramatiq_tasks", "--processes", "2", "--threads", "8"),),
        3500,
        1400,
        170,
    ),
    Layout(
        "rq",
        "RQ (reference)",
        "rq",
        "2 x `rq worker` (forks a work horse per job)",
        (("worker", QUEUE), ("worker", QUEUE)),
        60,
        50,
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
        250,
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
