"""The kit's own ``celery`` subprocesses: ``project.testing``'s, rooted at this repository.

Rooted means the repository is first on their ``PYTHONPATH`` whatever their working directory,
so ``KIT_IMPORTS=tests.support.tasks`` imports also in a worker started from ``tmp_path`` (the
tests that prove ``celery -A project`` works from any directory).
"""

from __future__ import annotations

from pathlib import Path

from project.testing import workers

__all__ = ["ROOT", "CeleryProcess", "WorkerProcess"]

ROOT = Path(__file__).resolve().parents[2]


class CeleryProcess(workers.CeleryProcess):
    default_root = ROOT


class WorkerProcess(workers.WorkerProcess):
    default_root = ROOT
