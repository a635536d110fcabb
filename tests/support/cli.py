"""The ``kit`` command as a real subprocess, from the repository root, with this test's env."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

from tests.support.workers import ROOT


def run_kit(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "project.cli", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
