"""The kit's own test settings, on top of its pytest plugin (``project.testing``).

The plugin starts the session's private Redis, empties it before every test and provides the
workers (see ``project/testing/plugin.py``). This file adds what only the kit's suite needs:
its test-speed settings, the ``long`` scenarios left out by default, the tests that run one at
a time under pytest-xdist, the reliability table, the fixture names its tests were
written with, and an OTLP receiver.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.ledger import Row, rows_of, write_table

if TYPE_CHECKING:
    from celery.worker import WorkController

    from project.testing import RedisServer, WorkerProcess
    from tests.support.otlp import OTLPReceiver

# Test-speed settings, applied to this process and inherited by subprocess workers.
TEST_ENV = {
    "KIT_IMPORTS": "tests.support.tasks",
    "KIT_RETRY_BACKOFF": "0.2",  # seconds: retries in tests take fractions of a second
    "KIT_SOFT_SHUTDOWN_TIMEOUT": "2",
    "OTEL_SDK_DISABLED": "true",
}


def pytest_configure(config: pytest.Config) -> None:
    # The environment is complete before `project.app` is first made: it reads it once.
    for name in [n for n in os.environ if n.startswith("KIT_")]:
        del os.environ[name]  # the developer's own settings must not leak into tests
    os.environ.update(TEST_ENV)


#: The reliability scenarios' rows, from every report (this process's or an xdist worker's).
_LEDGER: list[Row] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":  # its user_properties hold everything the test recorded
        _LEDGER.extend(rows_of(report.user_properties))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    write_table(terminalreporter, _LEDGER)


#: Tests that load both CPUs for a while (a benchmark run, thousands of tasks, mypy) or assert
#: timings (send-to-start latency, a beat's period, a lock's expiry). The suite runs in xdist
#: processes (``addopts``); these go to one of them as one unit, so they run one at a time,
#: while the other processes run the rest. Node id prefixes, relative to the rootdir.
SERIAL = (
    "tests/benchmarks/test_suite_smoke.py",
    "tests/benchmarks/test_commands_smoke.py",
    "tests/reliability/test_faults.py::test_redis_restart_with_ten_thousand_queued_tasks",
    "tests/reliability/test_idle_fetch.py",
    "tests/reliability/test_sentinel.py::test_a_primary_failover_while_tasks_flow",
    "tests/reliability/test_load.py",
    "tests/test_beat_schedule.py::test_one_beat_fires_on_time",
    "tests/test_lint.py::test_mypy_finds_nothing",
    "tests/project/test_dedup.py::test_killed_worker_blocks_a_single_flight_key",
    "tests/project/test_transport.py::test_a_paused_queue_is_skipped_and_resume_wakes",
)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist's
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` with :data:`SERIAL` as one more group. Marking the tests
    ``xdist_group`` would not do: xdist 3.8 groups by rewriting ``item._nodeid``, which
    pytest 9.2 no longer reads, so every test would be distributed on its own."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class SerialGroupScheduling(LoadGroupScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return "serial" if nodeid.startswith(SERIAL) else str(super()._split_scope(nodeid))

    return SerialGroupScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the ``long`` scenarios out unless ``-m`` asks for them (``-m long``)."""
    if "long" in (config.option.markexpr or ""):
        return
    long_items = [item for item in items if item.get_closest_marker("long")]
    if long_items:
        config.hook.pytest_deselected(items=long_items)
        items[:] = [item for item in items if not item.get_closest_marker("long")]


# -- the plugin's fixtures under the names the kit's tests use ------------------------------


@pytest.fixture(scope="session")
def redis_server(kit_redis_server: RedisServer) -> RedisServer:
    return kit_redis_server


@pytest.fixture(scope="session")
def redis_url(kit_redis_url: str) -> str:
    return kit_redis_url


@pytest.fixture
def redis(kit_redis: Any) -> Any:
    return kit_redis


@pytest.fixture
def private_redis(kit_private_redis: RedisServer) -> RedisServer:
    """A server of this test's own, to stop, restart with AOF, or kill."""
    return kit_private_redis


@pytest.fixture
def celery_worker(kit_worker: WorkController) -> WorkController:
    """The kit's in-thread worker. pytest-celery 1.x's own ``celery_worker`` needs Docker;
    this conftest's fixture shadows it."""
    return kit_worker


@pytest.fixture
def start_worker(
    kit_start_worker: Callable[..., WorkerProcess],
) -> Callable[..., WorkerProcess]:
    """Factory: ``start_worker(concurrency=1, queues=None, env={...})``, ready when returned."""
    return kit_start_worker


# -- the kit's own needs ---------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    """A real OTLP/gRPC receiver for this test: point a process's exporters at
    ``receiver.endpoint`` (``tests.support.otlp.telemetry_env``) and read back what it sent."""
    from tests.support.otlp import OTLPReceiver

    server = OTLPReceiver().start()
    yield server
    server.stop()
