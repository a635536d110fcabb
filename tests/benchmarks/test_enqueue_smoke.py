"""The enqueue benchmark end to end, with counts too small to mean anything but "it works".

Run as a subprocess, as a developer would run it: the benchmark starts its own Redis and OTLP
receiver and one producer process per run. Dramatiq and RQ are optional references: they must
appear when installed and be reported as skipped when not.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.enqueue import VARIANTS, available

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 60.0  # seconds; about 10 s on a 2-CPU machine (six producer start-ups)


@pytest.mark.e2e
@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_enqueue_benchmark_reports_every_variant(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "enqueue", "--tasks", "50", "--repeat", "1",
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
    runnable, skipped = available(VARIANTS)
    for variant in runnable:
        assert variant.label in rows, f"{variant.label!r} missing from:\n{result.stdout}"
        median = rows[variant.label][2].replace(",", "")
        assert re.fullmatch(r"\d+", median) and int(median) > 0, rows[variant.label]
    for variant in skipped:
        assert f"{variant.label}: skipped" in result.stdout
    for text in ("enqueue_unique / apply_async, telemetry off: ",
                 "enqueue_unique / apply_async, telemetry on: "):
        assert re.search(re.escape(text) + r"\d+\.\d\d \(target >= 0\.80", result.stdout), text

    payload = json.loads((tmp_path / "enqueue.json").read_text())
    assert {s["variant"] for s in payload["summary"]} == {v.key for v in runnable}
    assert all(run["rate"] > 0 for run in payload["runs"])
    telemetry_on = [r for r in payload["runs"] if r["variant"].endswith("-otel")]
    assert telemetry_on and all(r["spans"].get("apply_async", 0) >= 50 for r in telemetry_on)
    assert (tmp_path / "enqueue.md").read_text().strip() in result.stdout
