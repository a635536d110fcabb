"""Redis commands per task, from ``INFO commandstats``: where a worker's Redis work goes.

Round trips and Redis CPU are what a Redis-bound worker pays per task, and the command count
is the one figure every framework can be compared on without touching its code: the
benchmark's Redis is private, so every command it serves during a measured window is the
workers' (the publisher is idle: the tasks were pre-loaded) or the benchmark's own probe,
whose cost per poll is known (:attr:`~benchmarks.core.measure.QueueProbe.per_poll`) and
subtracted, with the snapshot's own ``INFO``. Commands a Lua script runs are counted by Redis
too (one ``EVALSHA`` plus what it calls), and so are those inside ``MULTI``/``EXEC``.

The window opens when the first task is processed (start-up left out) and closes when none
is left, so the count divides by the tasks processed in it; tasks in flight at either edge
make it approximate to within a prefetch's worth of tasks. When no poll saw the run under way
(:attr:`~benchmarks.core.measure.Measurement.within_one_poll`), it opens at the snapshot taken
before the workers were spawned instead, start-up included.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import redis

__all__ = ["CommandCount", "CommandWindow", "command_calls"]

PREFIX = "cmdstat_"


def command_calls(client: redis.Redis) -> dict[str, int]:
    """Calls so far of each command Redis has served (``client|list`` style names)."""
    stats = client.info("commandstats")
    return {name.removeprefix(PREFIX): int(entry["calls"]) for name, entry in stats.items()}


@dataclass(frozen=True)
class CommandCount:
    tasks: int  # tasks processed in the window
    calls: dict[str, int]  # commands served in the window, by name, the probe's left out

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def per_task(self) -> float:
        return self.total / self.tasks if self.tasks else float("nan")

    def by_command(self, at_least: float = 0.0) -> dict[str, float]:
        """Commands per task, by command, most frequent first; those under ``at_least`` per
        task (start-up's, a reconnect's) left out."""
        if not self.tasks:
            return {}
        ranked = sorted(self.calls.items(), key=lambda item: (-item[1], item[0]))
        per_task = ((name, calls / self.tasks) for name, calls in ranked)
        return {name: n for name, n in per_task if n > at_least}

    def as_dict(self) -> dict[str, object]:
        return {
            "tasks": self.tasks,
            "commands": self.total,
            "per_task": self.per_task,
            "by_command_per_task": {k: round(v, 3) for k, v in self.by_command().items()},
        }


class CommandWindow:
    """``start()`` before the workers are spawned and again when the clock starts;
    ``finish()`` when it stops."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._snapshots: list[dict[str, int]] = []

    def start(self) -> None:
        self._snapshots.append(command_calls(self.client))

    def finish(
        self, tasks: int, polls: int, per_poll: Mapping[str, int], *, from_first: bool = False
    ) -> CommandCount:
        """The commands since the last :meth:`start` (the first, ``from_first``), less
        ``polls`` polls of ``per_poll`` each and the ``INFO`` of each snapshot since."""
        if not self._snapshots:
            raise RuntimeError("finish() before start()")
        index = 0 if from_first else len(self._snapshots) - 1
        before = self._snapshots[index]
        after = command_calls(self.client)
        less = {name: polls * count for name, count in per_poll.items()}
        less["info"] = less.get("info", 0) + len(self._snapshots) - index
        calls = {
            name: diff
            for name, count in after.items()
            if (diff := count - before.get(name, 0) - less.get(name, 0)) > 0
        }
        return CommandCount(tasks, calls)
