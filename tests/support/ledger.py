"""The reliability scenarios' table: tasks sent, processed, lost, duplicated and re-run per
scenario.

*Duplicated* is a task that ran more than once with nothing to excuse it: a defect. *Re-run* is
a task a fault struck on its way or mid-run (a SIGKILLed worker, a stopped Redis) that ran a
second time, which at-least-once delivery allows and cannot always avoid: a worker killed after
a task's body ran but before its acknowledgement leaves nothing that says the body ran. Those
are listed apart so that a non-zero *duplicated* always means a bug.

A scenario's row travels on its test report (``user_properties``), not in a module-level list:
under pytest-xdist the scenarios run in worker processes, and only the reports reach the process
that prints the summary. ``tests/conftest.py`` collects the rows and prints the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["PROPERTY", "Row", "rows_of", "write_table"]

#: The ``user_properties`` name a scenario's row is recorded under.
PROPERTY = "reliability_ledger"

Row = tuple[str, int, int, int, int, int]  # scenario, sent, processed, lost, duplicated, re-run


def rows_of(properties: Iterable[tuple[str, object]]) -> list[Row]:
    """The ledger rows among a report's ``user_properties`` (xdist turns tuples into lists)."""
    rows: list[Row] = []
    for name, value in properties:
        if name == PROPERTY and isinstance(value, list | tuple):
            scenario, sent, processed, lost, duplicated, rerun = value
            counts = (int(sent), int(processed), int(lost), int(duplicated), int(rerun))
            rows.append((str(scenario), *counts))
    return rows


def write_table(terminalreporter: Any, rows: list[Row]) -> None:
    if not rows:
        return
    write = terminalreporter.write_line
    write("")
    write("reliability scenarios")
    header = ("sent", 7), ("processed", 9), ("lost", 5), ("duplicated", 10), ("re-run", 6)
    write(f"{'scenario':64} " + " ".join(f"{name:>{width}}" for name, width in header))
    for scenario, *counts in rows:
        cells = " ".join(f"{n:>{width}}" for n, (_, width) in zip(counts, header, strict=True))
        write(f"{scenario[:64]:64} {cells}")
