"""The reliability suite's ledger: each scenario reports tasks sent, processed, lost and
duplicated, and the table is printed at the end of the run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

_ROWS: list[tuple[str, int, int, int, int]] = []


@dataclass
class Ledger:
    scenario: str = ""

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
        _ROWS.append((self.scenario, sent, processed, lost, duplicated))


@pytest.fixture
def ledger(request: pytest.FixtureRequest) -> Iterator[Ledger]:
    yield Ledger(request.node.name)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _ROWS:
        return
    write = terminalreporter.write_line
    write("")
    write("reliability scenarios")
    write(f"{'scenario':70} {'sent':>7} {'processed':>9} {'lost':>5} {'duplicated':>10}")
    for scenario, sent, processed, lost, duplicated in _ROWS:
        write(f"{scenario[:70]:70} {sent:>7} {processed:>9} {lost:>5} {duplicated:>10}")
