"""The single-benchmark sub-commands end to end, with counts too small to mean anything but
"it works". ``all`` (test_suite_smoke) covers enqueue; these cover the rest of the wiring."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.telemetry.scenario import telemetry_scenarios
from benchmarks.throughput.scenario import SCENARIOS

from .support import BenchmarkRun, run_benchmark

RUN_TIMEOUT = 90.0  # seconds per command; the slowest (telemetry) takes about 10 s


@pytest.mark.e2e
@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_throughput_reports_the_chosen_scenarios(tmp_path: Path) -> None:
    keys = ("plain", "kit-all-reverted")
    run = run_benchmark(
        "throughput",
        "--tasks",
        "50",
        "--repeat",
        "1",
        *(arg for key in keys for arg in ("--scenario", key)),
        output_dir=tmp_path,
        timeout=RUN_TIMEOUT,
    )
    for scenario in SCENARIOS:
        if scenario.key in keys:
            assert re.fullmatch(r"[\d,]+", run.row(scenario.label)[2]), scenario.key
    assert {s["scenario"] for s in run.payload["summary"]} == set(keys)


@pytest.mark.e2e
@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_telemetry_reports_the_chosen_scenarios_against_telemetry_off(tmp_path: Path) -> None:
    # ``all`` runs off and otlp; the failure modes run only here.
    keys = ("off", "collector-down", "no-endpoint")
    run = run_benchmark(
        "telemetry",
        "--tasks",
        "50",
        "--repeat",
        "1",
        *(arg for key in keys for arg in ("--scenario", key)),
        output_dir=tmp_path,
        timeout=RUN_TIMEOUT,
    )
    for scenario in telemetry_scenarios("http://127.0.0.1:1", "http://127.0.0.1:2"):
        if scenario.key not in keys:
            assert scenario.label not in run.stdout
            continue
        cells = run.row(scenario.label)
        assert re.fullmatch(r"[\d,]+", cells[2]), cells
        if scenario.key != "off":
            assert re.fullmatch(r"\d+\.\d\dx", cells[5]), cells
    assert {s["scenario"] for s in run.payload["summary"]} == set(keys)


@pytest.mark.e2e
@pytest.mark.timeout(RUN_TIMEOUT + 30)
def test_bulk_prints_the_ratio_against_the_target(tmp_path: Path) -> None:
    run = run_benchmark(
        "bulk", "--tasks", "100", "--repeat", "1", output_dir=tmp_path, timeout=RUN_TIMEOUT
    )
    assert re.search(
        r"enqueue_many / apply_async loop: \d+\.\d\dx \(target >= 20x: "
        r"(met|missed)\)",
        run.stdout,
    ), run.stdout
    assert {r["variant"] for r in run.payload["runs"]} == {
        "loop",
        "enqueue_many",
        "enqueue_many_unique",
    }
    assert run.payload["ratio"] > 0


def test_images_prints_speedup_and_quality(tmp_path: Path) -> None:
    run = run_benchmark(
        "images",
        "--size",
        "640x480",
        "--targets",
        "300,80",
        "--repeat",
        "1",
        output_dir=tmp_path,
        timeout=RUN_TIMEOUT,
    )
    assert "Kit vs naive: width 300:" in run.stdout
    rows = run.payload["rows"]
    assert {(r["target_width"], r["path"]) for r in rows} == {
        (w, p) for w in (300, 80) for p in ("naive", "kit", "draft 1x")
    }
    for row in rows:
        assert row["speedup_vs_naive"] > 0 and row["median_ms"] > 0
        if row["path"] == "kit":  # drafted at twice the output size: indistinguishable
            assert row["ssim"] > 0.98 and row["psnr_db"] > 35, row


@pytest.fixture(scope="module")
def hooks_run(tmp_path_factory: pytest.TempPathFactory) -> BenchmarkRun:
    """One ``hooks`` run, read by both tests below (it starts eight processes)."""
    return run_benchmark(
        "hooks",
        "--tasks",
        "40",
        "--attempts",
        "300",
        output_dir=tmp_path_factory.mktemp("hooks"),
        timeout=RUN_TIMEOUT,
    )


def test_hooks_times_every_per_task_hook_with_telemetry_off_and_on(hooks_run: BenchmarkRun) -> None:
    off, otlp = hooks_run.payload["runs"]
    assert (off["mode"], otlp["mode"]) == ("off", "otlp")
    for measured in (off, otlp):
        seen = {(row["hook"], row["middleware"]) for row in measured["hooks"]}
        # The per-task path of the map in project/lifecycle, each hook timed.
        assert {
            ("before_publish", "Stamp"),
            ("before_apply", "DurableDelay"),
            ("before_run", "SingleFlightRun"),
            ("on_success", "Counters"),
            ("after_body", "LockRelease"),
            ("before_run", "Empty"),
        } <= seen
        assert all(row["us"] > 0 for row in measured["hooks"])
    # With telemetry on, the attempt's span receivers are timed too (not middleware).
    receivers = {(row["hook"], row["middleware"]) for row in otlp["hooks"]}
    assert {("task_prerun", "ConsumerTracing"), ("task_postrun", "ConsumerTracing")} <= receivers


def test_hooks_costs_a_whole_attempt_with_telemetry_off_and_on(hooks_run: BenchmarkRun) -> None:
    attempts = hooks_run.payload["attempts"]
    assert [a["mode"] for a in attempts] == ["off", "otlp"] * 3  # interleaved
    assert all(a["attempts"] == 300 and a["thread_us"] > 0 for a in attempts)
    off = sorted(a["thread_us"] for a in attempts if a["mode"] == "off")[1]
    otlp = sorted(a["thread_us"] for a in attempts if a["mode"] == "otlp")[1]
    assert otlp > off  # the span, its context and its metrics are made on the task's thread
    # The export thread's work shows in the whole process's CPU, never less than the thread's.
    assert all(a["process_us"] >= a["thread_us"] for a in attempts)
