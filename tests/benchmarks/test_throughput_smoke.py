"""The throughput benchmark end to end, with counts too small to mean anything but "it works".

Run as a subprocess, as a developer would run it: the benchmark must start its own Redis and
workers and ignore the test session's (whose REDIS_URL and KIT_* variables it inherits here).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.throughput import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 120.0  # seconds; about 30 s on a 2-CPU machine (ten worker start-ups)


@pytest.mark.e2e
@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_throughput_benchmark_reports_every_scenario(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "throughput", "--tasks", "50", "--repeat", "1",
         "--output-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    rows = {
        cells[0]: cells
        for line in result.stdout.splitlines()
        if line.startswith("| ")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }
    for scenario in SCENARIOS:
        assert scenario.label in rows, f"{scenario.label!r} missing from:\n{result.stdout}"
        median = rows[scenario.label][2].replace(",", "")
        assert re.fullmatch(r"\d+", median) and int(median) > 0, rows[scenario.label]

    payload = json.loads((tmp_path / "throughput.json").read_text())
    assert {s["scenario"] for s in payload["summary"]} == {s.key for s in SCENARIOS}
    assert all(run["rate"] > 0 for run in payload["runs"])
    assert (tmp_path / "throughput.md").read_text().strip() in result.stdout
