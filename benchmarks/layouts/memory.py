"""Memory: RSS of a worker and its children after 1,000 tasks and after 100,000 (leak check).

One worker start: :data:`FIRST` no-op tasks are pre-loaded and processed, and the resident set
of every worker process and its children (psutil) is summed once the workers are idle again;
then the rest, up to :data:`TOTAL`, is fed in chunks (the backlog stays under :data:`CHUNK`, so
Redis does not hold 100,000 messages at once) and the sum is taken again. A ratio near 1.0
says memory levelled off after the first thousand tasks; a leak of even a few hundred bytes per
task shows as tens of MB. One run: 100,000 tasks take minutes, and the check is for a trend,
not a rate. The layout is the kit's recommended one (the fastest through 100,000 tasks); it
runs the kit's own per-task code (late ack, results, telemetry hooks) like the default.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.core.jsonable import record
from benchmarks.core.measure import STALL_TIMEOUT, BenchmarkError, QueueProbe, measure
from benchmarks.core.processes import WorkerGroup
from benchmarks.core.rounds import Progress, stderr_progress
from benchmarks.core.session import Session
from benchmarks.layouts.catalog import Layout, probe_for, start_workers, vet
from benchmarks.layouts.publishers import publisher_for

__all__ = ["FIRST", "TOTAL", "MemoryRun", "rss_bytes", "run_memory"]

FIRST = 1_000
TOTAL = 100_000
CHUNK = 10_000
SETTLE = 1.0  # seconds idle before a reading: in-flight acks and result writes finish


@dataclass(frozen=True)
class MemoryRun:
    layout: str
    first_tasks: int
    total_tasks: int
    rss_first: int  # bytes, summed over the workers' processes
    rss_last: int
    processes: int  # processes summed (workers plus pool children)
    seconds: float  # wall time to process the rest after the first reading

    @property
    def ratio(self) -> float:
        return self.rss_last / self.rss_first if self.rss_first else float("nan")

    @property
    def rate(self) -> float:
        return (self.total_tasks - self.first_tasks) / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, object]:
        return record(
            self,
            "layout",
            "first_tasks",
            "total_tasks",
            "rss_first_bytes=rss_first",
            "rss_last_bytes=rss_last",
            "ratio",
            "processes",
            "seconds",
            "sustained_rate=rate",
        )


def rss_bytes(pids: Sequence[int]) -> tuple[int, int]:
    """(summed RSS, process count) of these processes and all their descendants."""
    import psutil  # the bench extra: only this section needs it

    total = count = 0
    for pid in pids:
        root = psutil.Process(pid)
        for process in (root, *root.children(recursive=True)):
            try:
                total += process.memory_info().rss
                count += 1
            except psutil.NoSuchProcess:  # a child that just exited
                continue
    return total, count


def run_memory(
    bench: Session,
    layout: Layout,
    *,
    first: int = FIRST,
    total: int = TOTAL,
    chunk: int = CHUNK,
    progress: Progress = stderr_progress,
) -> MemoryRun:
    redis = bench.redis
    redis.flushall()
    publisher = publisher_for(layout, redis.url)
    try:
        publisher.preload("noop", first)
        probe = probe_for(layout, redis.client)
        spawned_at = time.monotonic()
        with start_workers(layout, redis.url, bench.workdir, f"memory-{layout.key}") as workers:
            measure(probe, workers, first, spawned_at=spawned_at)
            time.sleep(SETTLE)
            rss_first, _ = rss_bytes(workers.pids)
            progress(f"memory {layout.key}: {rss_first / 2**20:.1f} MiB after {first} tasks")
            began = time.monotonic()
            fed = first
            while fed < total:
                batch = min(chunk, total - fed)
                publisher.preload("noop", batch)
                fed += batch
                _wait_until(probe, workers, chunk // 2 if fed < total else 0)
            seconds = time.monotonic() - began
            time.sleep(SETTLE)
            rss_last, processes = rss_bytes(workers.pids)
            errors = workers.logged_errors()
        vet(layout, redis, errors)
    finally:
        publisher.close()
    run = MemoryRun(layout.key, first, total, rss_first, rss_last, processes, seconds)
    progress(
        f"memory {layout.key}: {rss_last / 2**20:.1f} MiB after {total} tasks "
        f"(x{run.ratio:.3f}; {run.rate:,.0f} tasks/s sustained)"
    )
    return run


def _wait_until(probe: QueueProbe, workers: WorkerGroup, remaining: int) -> None:
    """Poll until at most ``remaining`` tasks are left; fail if the workers die or stall."""
    last, last_progress = probe.remaining(), time.monotonic()
    while last > remaining:
        time.sleep(0.05)
        now_left, now = probe.remaining(), time.monotonic()
        if now_left < last:
            last, last_progress = now_left, now
        if (code := workers.exit_code()) is not None or now - last_progress > STALL_TIMEOUT:
            problem = f"exited with {code}" if code is not None else "stalled"
            raise BenchmarkError(
                f"`{workers.describe()}` {problem} with {now_left} tasks "
                f"left:\n{workers.log_tail()}"
            )
