"""``python -m benchmarks all --quick`` end to end: every scenario runs and every row of the
report is there, with the targets' pass/fail. Counts this small measure nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.core.machine import available
from benchmarks.enqueue.scenario import VARIANTS
from benchmarks.layouts.catalog import LAYOUTS, RECOMMENDED
from benchmarks.suite.chart import CHART_NAME
from benchmarks.suite.rows import COMMANDS_TITLE, COST_TITLE, PROCESSING
from benchmarks.suite.run import CONCERNS, LATENCY_LAYOUTS, QUICK, SECTIONS

from .support import BenchmarkRun, run_benchmark

RUN_TIMEOUT = 150.0  # seconds; about 45 s on an idle 2-CPU machine
RATE = re.compile(r"[\d,]+/s")
VERDICT = re.compile(r"(PASS|FAIL)( \(within noise\))?")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="session")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("suite")


# Session, not module: the serial xdist group (tests/conftest.py) may run other modules' tests
# between these, and a module fixture would run the whole suite again after each switch.
@pytest.fixture(scope="session")
def suite(output: Path) -> BenchmarkRun:
    return run_benchmark("all", "--quick", output_dir=output, timeout=RUN_TIMEOUT)


def _positive_rate(cells: list[str]) -> None:
    assert RATE.fullmatch(cells[2]) and int(cells[2][:-2].replace(",", "")) > 0, cells


@pytest.mark.e2e
@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_every_scenario_has_its_row(suite: BenchmarkRun) -> None:
    variants, _ = available(VARIANTS)
    layouts, skipped = available(LAYOUTS)
    for variant in variants:
        _positive_rate(suite.row("Enqueue", variant.label))
    for _, title in PROCESSING:
        for layout in layouts:
            _positive_rate(suite.row(title, layout.label))
    for layout in layouts:
        cells = suite.row(COMMANDS_TITLE, layout.label)
        assert float(cells[2]) > 0, cells
    for key in QUICK.cost_scenarios[1:]:
        cells = suite.row(COST_TITLE, CONCERNS[key])
        assert re.fullmatch(r"-?[\d,]+ us", cells[2]), cells
    for title in ("Latency, idle", "Latency, 50 % load"):
        for layout in layouts:
            if layout.key in LATENCY_LAYOUTS:
                cells = suite.row(title, f"{layout.label}: p50 / p95 / p99")
                assert re.fullmatch(r"[\d.]+ / [\d.]+ / [\d.]+ ms", cells[2]), cells
    for label in (
        "kit default worker, telemetry off",
        "kit default worker, traces + metrics over OTLP",
    ):
        _positive_rate(suite.row("Telemetry, no-op", label))
    memory = suite.row("Memory")
    assert re.fullmatch(r"[\d.]+ / [\d.]+ MiB", memory[2]), memory
    for width in QUICK.image_targets:
        suite.row("Images", f"decode+resize to {width} px vs naive")
    assert all(f"skipping layout {x.key}" in suite.stderr for x in skipped)


@pytest.mark.e2e
@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_every_target_is_judged_beside_its_figure(suite: BenchmarkRun) -> None:
    layouts, _ = available(LAYOUTS)
    judged = {
        ("Enqueue", "Celery apply_async (kit app)"),
        ("Enqueue", "kit enqueue_many (bulk)"),
        ("Processing, no-op", "kit default worker"),
        ("Processing, 10 ms I/O", "kit default worker"),
        (COMMANDS_TITLE, "kit default worker"),
        ("Latency, idle", "kit default worker: p50 / p95 / p99"),
        ("Telemetry, no-op", "kit default worker, traces + metrics over OTLP"),
        ("Memory",),
    }
    recommended = next(x for x in layouts if x.key == RECOMMENDED)
    if any(x.key == "dramatiq" for x in layouts):
        judged.add(("Processing, no-op", recommended.label))
        judged.add(("Processing, 10 ms I/O", recommended.label))
    for leading in judged:
        cells = suite.row(*leading)
        assert cells[4] and VERDICT.fullmatch(cells[5]), cells
    assert len(suite.payload["targets"]) == len(judged)
    assert len(re.findall(r"^- (PASS|FAIL)", suite.stdout, re.MULTILINE)) == len(judged)


@pytest.mark.e2e
@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_the_json_holds_every_section(suite: BenchmarkRun) -> None:
    payload = suite.payload
    assert set(payload["section_seconds"]) == set(SECTIONS)
    assert all(run["rate"] > 0 for run in payload["runs"]["processing"])
    assert all(run["rate"] > 0 for run in payload["runs"]["enqueue"])
    assert all(run["tasks"] > 0 and run["p50"] > 0 for run in payload["latency"])
    assert payload["memory"]["rss_last_bytes"] > 0 and payload["memory"]["ratio"] > 0
    exporting = [run for run in payload["telemetry"] if run["scenario"] == "otlp"]
    # One consumer span per task reached the receiver, and one producer span per pre-load.
    assert exporting and all(
        run["worker_spans"].get("run", 0) >= QUICK.telemetry_tasks for run in exporting
    )
    assert payload["machine"]["usable_cpus"] > 0 and payload["wall_seconds"] > 0
    layouts, _ = available(LAYOUTS)
    assert set(payload["redis_commands_per_task"]) == {x.key for x in layouts}
    assert {c["scenario"] for c in payload["costs_us_per_task"]} >= set(QUICK.cost_scenarios[1:])


@pytest.mark.e2e
@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_the_throughput_chart_is_written_beside_the_json(suite: BenchmarkRun, output: Path) -> None:
    chart = output / CHART_NAME
    assert chart.read_bytes().startswith(PNG_SIGNATURE)
    assert f"wrote {chart}" in suite.stderr
