"""Python subprocesses from the repository root, with this test's env: the ``kit`` command, or
any script (a producer set up as a web app would be)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

from tests.support.workers import ROOT


def run_python(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """``python *args`` from the repository root (on its ``PYTHONPATH``), ``env`` over this
    process's environment; ``check``: raise when it exits non-zero."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def run_kit(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "project.cli", *args, env=env, timeout=timeout)
