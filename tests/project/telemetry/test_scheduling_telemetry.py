"""Telemetry of scheduling and maintenance, read back from a real OTLP receiver: a durably
delayed task stays in its caller's trace; health:check exports its figures."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.cli import run_python
from tests.support.otlp import OTLPReceiver, telemetry_env


def _env(receiver: OTLPReceiver) -> dict[str, str]:
    return telemetry_env(
        receiver,
        OTEL_METRIC_EXPORT_INTERVAL="300",
        KIT_DURABLE_DELAY_THRESHOLD="1",
        KIT_FORWARDER_INTERVAL="0.2",
    )


@pytest.mark.e2e
def test_durably_delayed_task_continues_the_trace_that_scheduled_it(
    receiver: OTLPReceiver, start_worker: Any
) -> None:
    env = _env(receiver)
    start_worker(env=env)
    script = (
        "from project.telemetry import setup_telemetry, shutdown_telemetry\n"
        "from tests.support.tasks import count\n"
        "setup_telemetry('producer')\n"
        "print(count.apply_async(('traced',), countdown=2).id)\n"
        "shutdown_telemetry()\n"
    )
    done = run_python("-c", script, env=env, timeout=60, check=True)
    task_id = done.stdout.strip()
    spans = receiver.wait_for_spans(
        lambda spans: any(
            s.attributes.get("task.id") == task_id and s.name.startswith("run/") for s in spans
        )
    )
    (scheduled,) = [s for s in spans if s.name == "schedule/tests.count"]
    (run,) = [s for s in spans if s.name == "run/tests.count"]
    # The forwarder publishes with the context saved at scheduling: the run is its child.
    assert run.parent_id == scheduled.span_id
    assert run.trace_id == scheduled.trace_id
    assert scheduled.attributes["task.delay"] == pytest.approx(2, abs=0.5)


@pytest.mark.e2e
def test_health_check_exports_its_figures_and_breaches(
    receiver: OTLPReceiver, start_worker: Any, redis: Any
) -> None:
    from tasks.maintenance.tasks import health_check

    for _ in range(3):
        redis.lpush("low", "{}")
    start_worker(queues=["default"], env={**_env(receiver), "KIT_ALERT_BACKLOG": "2"})
    report = health_check.delay().get(timeout=30)
    assert [b["check"] for b in report["breaches"]] == ["backlog"]

    def exported() -> bool:
        return receiver.total("kit.health.breaches", check="backlog") == 1

    from tests.support.polling import eventually

    eventually(exported, 30)
    assert receiver.total("kit.health.workers") >= 1
    backlog = receiver.latest("kit.health.backlog")
    assert {p.attributes["task.queue"]: p.value for p in backlog.values()}["low"] == 3
