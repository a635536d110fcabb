"""Facts about the machine and software a result came from, and which optional libraries
are there to compare with.

Throughput numbers mean little without them: a 2-CPU VM and a 32-core workstation give
different absolute rates (and different default worker concurrency), and a busy machine
(see the load average) gives noisy ones. Ratios between scenarios travel better than rates.
Dramatiq and RQ are not the kit's dependencies: a scenario that needs one is skipped (and the
report says so) when it is not installed, rather than failing the run.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib.util
import os
import platform
import subprocess
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Protocol, TypeVar

import celery
import kombu
import redis

from benchmarks.core.processes import ROOT

__all__ = ["NeedsLibrary", "available", "library_versions", "machine_facts"]

KIT_PATHS = ("project", "tasks", "beat_schedule.py")
#: The libraries besides Celery whose versions the suite's report names.
LIBRARIES = ("dramatiq", "rq", "opentelemetry-sdk", "pillow")


class NeedsLibrary(Protocol):
    """A scenario that needs a library the kit does not install (Dramatiq, RQ: the ``bench``
    extra); ``requires`` names its module, or is None."""

    @property
    def requires(self) -> str | None: ...


T = TypeVar("T", bound=NeedsLibrary)


def available(items: Iterable[T]) -> tuple[list[T], list[T]]:
    """(runnable, skipped): the items whose required module is importable, and the others,
    which a report lists as skipped rather than failing the run."""
    runnable: list[T] = []
    skipped: list[T] = []
    for item in items:
        missing = item.requires and importlib.util.find_spec(item.requires) is None
        (skipped if missing else runnable).append(item)
    return runnable, skipped


def library_versions() -> dict[str, str]:
    """The installed version of each of :data:`LIBRARIES` (``not installed`` when absent)."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout  # unstripped: porcelain status lines start with a space


def _kit_revision() -> str:
    """The commit measured, and whether the kit's own files differed from it."""
    try:
        commit = _git("rev-parse", "--short", "HEAD").strip()
        changed = _git("status", "--porcelain", "--", *KIT_PATHS).splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    if not changed:
        return commit
    names = ", ".join(line[3:] for line in changed)
    return f"{commit} plus uncommitted kit changes: {names}"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, sep, value = line.partition(":")
            if sep and name.strip() == "model name":
                return value.strip()
    return platform.processor() or "unknown"


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _load_average() -> str:
    with contextlib.suppress(OSError, AttributeError):
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    return "unknown"


def machine_facts(redis_server_version: str) -> dict[str, str | int]:
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count() or 0,
        "usable_cpus": _usable_cpus(),
        "cpu_model": _cpu_model(),
        "load_average_at_start": _load_average(),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "celery": str(celery.__version__),
        "kombu": str(kombu.__version__),
        "redis_py": str(redis.__version__),
        "redis_server": redis_server_version,
        "kit_revision": _kit_revision(),
    }
