"""The code stays ruff- and mypy-clean: checked by the suite so CI enforces it."""

from __future__ import annotations

import subprocess
import sys

from tests.support.workers import ROOT

CHECKED = ["project", "tasks", "tests", "benchmarks", "examples", "beat_schedule.py"]


def test_ruff_finds_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *CHECKED], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", *CHECKED], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
