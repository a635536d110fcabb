"""The reliability suite's ledger: each scenario reports tasks sent, processed, lost,
duplicated and re-run after a fault, and the table is printed at the end of the run
(``tests.support.ledger``)."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.ledger import PROPERTY


@dataclass
class Ledger:
    scenario: str = ""
    #: The test item's ``user_properties``: the row goes out on its report.
    properties: list[tuple[str, object]] = field(default_factory=list)

    def count_runs(
        self, redis: Any, keys: list[str], interrupted: Collection[str] = ()
    ) -> tuple[int, int, int]:
        """(processed, lost, duplicated) from the ``tests.count`` counters of ``keys``.

        ``interrupted`` names the tasks a fault struck while they were on their way or running
        (a worker SIGKILLed, Redis stopped): at-least-once delivery may rightly run such a task
        a second time, and that second run is counted apart (:meth:`reruns`), not as a
        duplicate. A duplicate is any other task that ran more than once, or an interrupted
        one that ran more than twice.
        """
        runs = self._runs(redis, keys)
        return (
            sum(1 for r in runs.values() if r >= 1),
            sum(1 for r in runs.values() if r == 0),
            sum(1 for k, r in runs.items() if r > (2 if k in interrupted else 1)),
        )

    def reruns(self, redis: Any, interrupted: Collection[str]) -> int:
        """How many of the ``interrupted`` tasks ran exactly twice."""
        return sum(1 for r in self._runs(redis, list(interrupted)).values() if r == 2)

    @staticmethod
    def _runs(redis: Any, keys: list[str]) -> dict[str, int]:
        values = redis.mget([f"test:count:{k}" for k in keys]) if keys else []
        return {k: int(v or 0) for k, v in zip(keys, values, strict=True)}

    def record(self, sent: int, processed: int, lost: int, duplicated: int, rerun: int = 0) -> None:
        row = (self.scenario, sent, processed, lost, duplicated, rerun)
        self.properties.append((PROPERTY, row))


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    yield Ledger(request.node.name, request.node.user_properties)
