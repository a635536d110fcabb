"""The reliability suite's ledger: each scenario reports tasks sent, processed, lost and
duplicated, and the table is printed at the end of the run (``tests.support.ledger``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.ledger import PROPERTY


@dataclass
class Ledger:
    scenario: str = ""
    #: The test item's ``user_properties``: the row goes out on its report.
    properties: list[tuple[str, object]] = field(default_factory=list)

    def count_runs(self, redis: Any, keys: list[str]) -> tuple[int, int, int]:
        """(processed, lost, duplicated) from the ``tests.count`` counters of ``keys``."""
        values = redis.mget([f"test:count:{k}" for k in keys]) if keys else []
        runs = [int(v or 0) for v in values]
        return (
            sum(1 for r in runs if r >= 1),
            sum(1 for r in runs if r == 0),
            sum(1 for r in runs if r > 1),
        )

    def record(self, sent: int, processed: int, lost: int, duplicated: int) -> None:
        self.properties.append((PROPERTY, (self.scenario, sent, processed, lost, duplicated)))


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    yield Ledger(request.node.name, request.node.user_properties)
