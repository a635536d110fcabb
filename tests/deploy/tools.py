"""The real Prometheus server and promtool, from Debian's ``prometheus`` package.

CI runs only ``pytest`` on a fresh machine, so the suite brings what it needs itself: when
``promtool`` or ``prometheus`` is not on PATH and the tests run as root with apt, the package is
installed once per session (about 10 s). Elsewhere the tests that need it fail, saying how to
install it, rather than skip: a skipped alert test would look like a passing one.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass

import pytest

PACKAGE = "prometheus"
INSTALL_TIMEOUT = 600.0  # seconds: apt-get update, then the package and its few dependencies


@dataclass(frozen=True)
class PrometheusTools:
    prometheus: str
    promtool: str


def _found() -> PrometheusTools | None:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    return PrometheusTools(prometheus, promtool) if prometheus and promtool else None


@functools.cache
def prometheus_tools() -> PrometheusTools:
    """Both binaries, installing Debian's package first when they are missing."""
    found = _found()
    if found is not None:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.fail(
            "promtool and prometheus are not installed and this user cannot install them: "
            f"run `apt-get install {PACKAGE}` as root (Debian's package), then the tests again",
            pytrace=False,
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", PACKAGE]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    if done.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(
            ["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=INSTALL_TIMEOUT
        )
        done = subprocess.run(
            install, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT
        )
    found = _found()
    if found is None:
        pytest.fail(
            f"`{' '.join(install)}` did not provide promtool and prometheus "
            f"(exit {done.returncode}): {done.stderr[-2000:]}",
            pytrace=False,
        )
    return found
