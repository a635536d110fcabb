"""The telemetry benchmark end to end, with counts too small to mean anything but "it works".

Run as a subprocess, as a developer would run it: the benchmark starts its own Redis, OTLP
receiver and workers, and ignores the test session's REDIS_URL, KIT_* and OTEL_* variables.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.telemetry import EXPORTING, telemetry_scenarios

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 90.0  # seconds; about 25 s on a 2-CPU machine (four worker start-ups, span wait)
SCENARIOS = telemetry_scenarios("http://127.0.0.1:1", "http://127.0.0.1:2")


def _rows(stdout: str) -> dict[str, list[str]]:
    return {
        cells[0]: cells
        for line in stdout.splitlines()
        if line.startswith("| ")
        for cells in [[cell.strip() for cell in line.strip("|").split("|")]]
    }


@pytest.mark.e2e
@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_telemetry_benchmark_reports_every_scenario(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "telemetry", "--tasks", "50", "--repeat", "1",
         "--output-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    rows = _rows(result.stdout)
    for scenario in SCENARIOS:
        assert scenario.label in rows, f"{scenario.label!r} missing from:\n{result.stdout}"
        median = rows[scenario.label][2].replace(",", "")
        assert re.fullmatch(r"\d+", median) and int(median) > 0, rows[scenario.label]
        if scenario.key != "off":
            assert re.fullmatch(r"\d+\.\d\dx", rows[scenario.label][5]), rows[scenario.label]
    assert ">= 0.90" in result.stdout

    payload = json.loads((tmp_path / "telemetry.json").read_text())
    assert {s["scenario"] for s in payload["summary"]} == {s.key for s in SCENARIOS}
    assert all(run["rate"] > 0 for run in payload["runs"])
    exporting = [run for run in payload["runs"] if run["scenario"] == EXPORTING]
    # One consumer span per task reached the receiver, and one producer span per pre-load.
    assert all(run["worker_spans"].get("run", 0) >= 50 for run in exporting), exporting
    assert all(run["producer_spans"].get("apply_async", 0) >= 50 for run in exporting)
    assert (tmp_path / "telemetry.md").read_text().strip() in result.stdout
