"""CPU time per task of a worker and of Redis, and what the host took from the VM meanwhile.

Why beside the rate: the kit's default worker is not CPU-bound on this project's 2-CPU VM (its
main process waits on Redis round trips; its processes keep about 1.5 of the 2 CPUs busy), so
work added to the pool's children, such as telemetry, shows in the rate only as far as it
delays the main process, and the host's steal time moves the rate by more than 5 % from one
run to the next. The CPU seconds a worker's processes spend per task measure what a
deployment pays for a feature whatever the rate does; steal (``/proc/stat``, the share of the
machine's time the hypervisor gave to others) tells a reader which runs the host disturbed.

Measured between the clock's start and its stop (:func:`~benchmarks.core.measure.measure`):
the worker's main process and every child alive at the stop (a child started in between
counts from zero), Redis from its own ``INFO cpu``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import redis

from benchmarks.core.jsonable import record

__all__ = ["CpuMeter", "CpuPerTask"]

_PROC_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class CpuPerTask:
    worker_us: float  # user + system, main process and children, microseconds per task
    redis_us: float  # Redis server's user + system, microseconds per task
    steal_pct: float | None  # of the machine's CPU time, over the run; None: not Linux

    def as_dict(self) -> dict[str, object]:
        return record(self, "worker_us", "redis_us", "steal_pct")


@dataclass(frozen=True)
class _Snapshot:
    processes: dict[int, float]  # pid -> user + system seconds
    redis: float
    steal: tuple[int, int] | None  # (steal, all) jiffies since boot


class CpuMeter:
    """``start(pid)`` as the clock starts, ``stop()`` as it stops, then ``per_task(tasks)``
    for the tasks the clock counted."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._pid: int | None = None
        self._start: _Snapshot | None = None
        self._stop: _Snapshot | None = None

    def start(self, pid: int) -> None:
        self._pid = pid
        self._start = self._snapshot()

    def stop(self) -> None:
        if self._start is not None:
            self._stop = self._snapshot()

    def per_task(self, tasks: int) -> CpuPerTask | None:
        """Between ``start`` and ``stop`` (``None``: not both, or no task counted)."""
        begun, end = self._start, self._stop
        if begun is None or end is None or tasks <= 0:
            return None
        worker = sum(t - begun.processes.get(pid, 0.0) for pid, t in end.processes.items())
        steal = None
        if end.steal is not None and begun.steal is not None:
            total = end.steal[1] - begun.steal[1]
            steal = 100.0 * (end.steal[0] - begun.steal[0]) / total if total > 0 else 0.0
        return CpuPerTask(
            worker_us=worker / tasks * 1e6,
            redis_us=(end.redis - begun.redis) / tasks * 1e6,
            steal_pct=steal,
        )

    def _snapshot(self) -> _Snapshot:
        import psutil  # the bench extra

        assert self._pid is not None
        seconds: dict[int, float] = {}
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(self._pid)
            for process in (root, *root.children(recursive=True)):
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = process.cpu_times()
                    seconds[process.pid] = times.user + times.system
        info = self.client.info("cpu")
        return _Snapshot(
            seconds, float(info["used_cpu_user"]) + float(info["used_cpu_sys"]), _steal()
        )


def _steal() -> tuple[int, int] | None:
    """(steal, all) jiffies of the aggregate ``cpu`` line of ``/proc/stat``."""
    try:
        fields = _PROC_STAT.read_text().splitlines()[0].split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal [guest guest_nice: inside user]
    ticks = [int(f) for f in fields[1:9]]
    return (ticks[7], sum(ticks)) if len(ticks) == 8 else None
