"""The pytest plugin as a user meets it: a project of its own, outside this repository, that
installs nothing but celery-kit. (The kit's own suite runs on the plugin too: tests/conftest.py.)

Each test writes that project into ``tmp_path`` and runs pytest on it in a subprocess, whose
environment is a developer's shell: no test settings of the kit's, and ``REDIS_URL`` naming a
Redis of the developer's own (here this session's server, with a key in it to keep).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis as redis_py

from tests.support.workers import ROOT

TIMEOUT = 180.0  # seconds: a cold interpreter imports Celery, the catalog and OpenTelemetry


def readme_example() -> str:
    """The first Python block of the README's "Testing your tasks" section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Testing your tasks\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's Testing your tasks section has no python block"
    return match.group(1)


def run_as_a_user(project: Path, redis: Any, redis_url: str, passes: bool = True) -> str:
    """Run pytest on ``project`` as its developer would, with ``REDIS_URL`` naming their own
    Redis (``redis_url``); check it passed (or failed, ``passes=False``) and left that Redis as
    it was; return its output."""
    redis.set("developer:data", "keep me")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("KIT_", "OTEL_", "PYTEST_")) and name != "PYTHONPATH"
    }
    env["REDIS_URL"] = redis_url
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    output = done.stdout + done.stderr
    assert (done.returncode == 0) == passes, output
    assert redis.keys("*") == ["developer:data"], "the test run wrote to the developer's Redis"
    results = redis_url.rsplit("/", 1)[0] + "/1"  # where the kit would have put results
    with redis_py.Redis.from_url(results) as client:
        assert client.dbsize() == 0, "the test run wrote results to the developer's Redis"
    return output


def test_the_readme_example_passes_on_a_real_worker(
    tmp_path: Path, redis: Any, redis_url: str
) -> None:
    (tmp_path / "test_welcome.py").write_text(readme_example())
    output = run_as_a_user(tmp_path, redis, redis_url)
    assert re.search(r"\b1 passed\b", output), output


def test_a_conftest_that_makes_the_app_at_import_gets_the_private_redis(
    tmp_path: Path, redis: Any, redis_url: str
) -> None:
    # A common conftest: it imports the project's tasks, which makes project.app, before any
    # pytest_configure has run.
    (tmp_path / "conftest.py").write_text(
        "import project\n\n@project.app.task(name='made:early')\ndef early(x):\n    return x * 2\n"
    )
    (tmp_path / "test_early.py").write_text(
        "from conftest import early\n"
        "from project import kit_of\n\n"
        "def test_it(kit_app, kit_redis_url, kit_worker):\n"
        "    assert kit_of(kit_app).settings.redis.url == kit_redis_url\n"
        "    assert early.delay(21).get(timeout=10) == 42\n"
    )
    output = run_as_a_user(tmp_path, redis, redis_url)
    assert re.search(r"\b1 passed\b", output), output


def test_a_failed_test_shows_the_output_of_the_workers_it_started(
    tmp_path: Path, redis: Any, redis_url: str
) -> None:
    (tmp_path / "test_broken.py").write_text(
        "def test_it(kit_start_worker):\n"
        "    kit_start_worker(concurrency=1)\n"
        "    assert False, 'the task never came back'\n"
    )
    output = run_as_a_user(tmp_path, redis, redis_url, passes=False)
    assert re.search(r"\b1 failed\b", output), output
    tail = output.split("Captured stdout teardown", 1)[-1]
    assert "last 200 lines" in tail and " ready." in tail, output  # the worker's own log


def test_the_kit_never_imports_its_test_plugin() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, project; project.app; import project.broker.transport; "
            "assert not [m for m in sys.modules if m.startswith('project.testing')], "
            "sorted(m for m in sys.modules if m.startswith('project.testing'))",
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
