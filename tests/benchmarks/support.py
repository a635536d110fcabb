"""Running ``python -m benchmarks <command>`` as a developer would, for the smoke tests.

A subprocess, because the benchmark must start its own Redis, workers and OTLP receiver and
ignore the test session's (whose REDIS_URL, KIT_* and OTEL_* variables it inherits here).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["ROOT", "BenchmarkRun", "run_benchmark"]


@dataclass(frozen=True)
class BenchmarkRun:
    stdout: str
    stderr: str
    payload: dict[str, Any]  # the JSON file the command wrote

    def rows(self) -> list[list[str]]:
        """Every Markdown table row printed, as stripped cells (separator rows left out)."""
        return [
            [cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in self.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("|---")
        ]

    def row(self, *leading: str) -> list[str]:
        """The first row whose leading cells are ``leading``; fails the test when none is."""
        for cells in self.rows():
            if tuple(cells[: len(leading)]) == leading:
                return cells
        raise AssertionError(f"no row starting with {leading!r} in:\n{self.stdout}")


def run_benchmark(
    command: str, *args: str, output_dir: Path, timeout: float, name: str | None = None
) -> BenchmarkRun:
    """Run one sub-command; check it succeeded and that the Markdown file it wrote is what it
    printed; return its output and JSON."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", command, *args, "--output-dir", str(output_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    stem = name or command
    assert (output_dir / f"{stem}.md").read_text().strip() in result.stdout
    payload = json.loads((output_dir / f"{stem}.json").read_text())
    return BenchmarkRun(result.stdout, result.stderr, payload)
