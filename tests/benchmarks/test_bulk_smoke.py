"""The bulk-enqueue benchmark end to end, with counts too small to mean anything but "it works"."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 90.0  # seconds; three producer start-ups on a 2-CPU machine


@pytest.mark.e2e
@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_bulk_benchmark_prints_the_ratio_against_the_target(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "bulk", "--tasks", "200", "--repeat", "1",
         "--output-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )

    assert result.returncode == 0, result.stderr[-4000:]
    assert re.search(r"enqueue_many / apply_async loop: \d+\.\d\dx \(target >= 10x: (met|missed)\)",
                     result.stdout), result.stdout
    payload = json.loads((tmp_path / "bulk.json").read_text())
    assert {run["variant"] for run in payload["runs"]} == {
        "loop", "enqueue_many", "enqueue_many_unique"}
    assert payload["ratio"] > 0 and all(run["rate"] > 0 for run in payload["runs"])
    assert (tmp_path / "bulk.md").read_text().strip() in result.stdout
