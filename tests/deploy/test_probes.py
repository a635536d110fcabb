"""The worker probes of deploy/ are real: run as written against a real worker.

The k8s readiness command and the image's healthcheck ask the worker, by its own node name,
for a ping through Redis; they succeed for a live worker and fail for one that does not answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.deploy.validators import DEPLOY, ROOT, load_yaml_documents

if TYPE_CHECKING:
    from tests.support.workers import WorkerProcess

PROBE_TIMEOUT = 60.0  # seconds: a cold `celery inspect` imports the kit


def _readiness_command() -> list[str]:
    for document in load_yaml_documents(DEPLOY / "k8s" / "worker-deployment.yaml"):
        if document["kind"] == "Deployment":
            container = document["spec"]["template"]["spec"]["containers"][0]
            command: list[str] = container["readinessProbe"]["exec"]["command"]
            return command
    raise AssertionError("no worker Deployment")


def _probe_env(hostname: str, tmp_path: Path) -> dict[str, str]:
    """The pod's view: HOSTNAME is the pod name, `celery` is on PATH."""
    return {
        **os.environ,
        "HOSTNAME": hostname,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "TMPDIR": str(tmp_path),
    }


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=PROBE_TIMEOUT
    )


def _worker_named(start_worker: Callable[..., WorkerProcess], pod: str) -> WorkerProcess:
    # As in the pod: the default node name celery@<hostname>, the hostname being the pod name.
    return start_worker(extra_args=[f"--hostname=celery@{pod}"])


@pytest.mark.e2e
def test_readiness_probe_passes_for_a_worker_that_answers_through_redis(
    start_worker: Any, tmp_path: Path
) -> None:
    pod = f"worker-{uuid.uuid4().hex[:8]}"
    _worker_named(start_worker, pod)
    done = _run(_readiness_command(), _probe_env(pod, tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"celery@{pod}: OK" in done.stdout + done.stderr


@pytest.mark.e2e
def test_readiness_probe_fails_when_this_pods_worker_does_not_answer(
    start_worker: Any, tmp_path: Path
) -> None:
    _worker_named(start_worker, f"worker-{uuid.uuid4().hex[:8]}")  # another pod's worker
    done = _run(_readiness_command(), _probe_env(f"worker-{uuid.uuid4().hex[:8]}", tmp_path))
    assert done.returncode != 0, done.stdout + done.stderr


@pytest.mark.e2e
def test_image_healthcheck_pings_the_worker_role_by_its_node_name(
    start_worker: Any, tmp_path: Path
) -> None:
    pod = f"worker-{uuid.uuid4().hex[:8]}"
    _worker_named(start_worker, pod)
    (tmp_path / "kit-role").write_text("worker\n")  # as the entrypoint records it
    done = _run(["sh", str(DEPLOY / "docker" / "healthcheck.sh")], _probe_env(pod, tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
