"""The image's entrypoint: `worker` (the default), `beat` and `flower` select the Celery role."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.deploy.validators import DEPLOY

ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"


def _run_entrypoint(tmp_path: Path, *args: str) -> tuple[str, str]:
    """Run the entrypoint with a stand-in `celery` that prints its arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "celery"
    stub.write_text('#!/bin/sh\necho "celery $*"\n')
    stub.chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), *args], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    role_file = tmp_path / "kit-role"
    return done.stdout.strip(), role_file.read_text().strip() if role_file.exists() else ""


def test_entrypoint_without_arguments_runs_a_worker(tmp_path: Path) -> None:
    assert _run_entrypoint(tmp_path) == ("celery -A project worker --loglevel=INFO", "worker")


@pytest.mark.parametrize("role", ["worker", "beat", "flower"])
def test_entrypoint_role_argument_runs_that_celery_command(tmp_path: Path, role: str) -> None:
    output, recorded = _run_entrypoint(tmp_path, role, "--loglevel=DEBUG")
    assert output == f"celery -A project {role} --loglevel=DEBUG"
    assert recorded == role


def test_entrypoint_runs_any_other_command_as_given(tmp_path: Path) -> None:
    assert _run_entrypoint(tmp_path, "echo", "hello") == ("hello", "")
