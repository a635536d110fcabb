"""The reliability scenarios' table: tasks sent, processed, lost and duplicated per scenario.

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

Row = tuple[str, int, int, int, int]  # scenario, sent, processed, lost, duplicated


def rows_of(properties: Iterable[tuple[str, object]]) -> list[Row]:
    """The ledger rows among a report's ``user_properties`` (xdist turns tuples into lists)."""
    rows: list[Row] = []
    for name, value in properties:
        if name == PROPERTY and isinstance(value, list | tuple):
            scenario, sent, processed, lost, duplicated = value
            rows.append((str(scenario), int(sent), int(processed), int(lost), int(duplicated)))
    return rows


def write_table(terminalreporter: Any, rows: list[Row]) -> None:
    if not rows:
        return
    write = terminalreporter.write_line
    write("")
    write("reliability scenarios")
    write(f"{'scenario':70} {'sent':>7} {'processed':>9} {'lost':>5} {'duplicated':>10}")
    for scenario, sent, processed, lost, duplicated in rows:
        write(f"{scenario[:70]:70} {sent:>7} {processed:>9} {lost:>5} {duplicated:>10}")
