"""The Flask and Django examples: a request's trace runs into the worker; bad input is a 400."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.otlp import OTLPReceiver, Span
from tests.support.webapps import ExampleServer

APPS = ["examples.flask_app", "examples.django_app"]


def _env(receiver: OTLPReceiver) -> dict[str, str]:
    return {
        "OTEL_SDK_DISABLED": "false",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "KIT_IMPORTS": "examples.signup_tasks",
    }


@pytest.mark.e2e
@pytest.mark.parametrize("module", APPS)
def test_request_trace_continues_into_the_workflow(
    module: str, receiver: OTLPReceiver, start_worker: Any
) -> None:
    from project import app

    env = _env(receiver)
    start_worker(concurrency=2, env=env)
    server = ExampleServer(module, env)
    try:
        status, body = server.post("/signup", {"email": "grace@example.com"})
        assert status == 202
        assert app.AsyncResult(body["workflow_id"]).get(timeout=60).startswith("trial:")
    finally:
        server.stop()

    def done(spans: list[Span]) -> bool:
        return any(s.name == "run/signup:notify_team" for s in spans) and any(
            s.kind == 2 and "signup" in s.name for s in spans
        )

    spans = receiver.wait_for_spans(done)
    (request,) = [s for s in spans if s.kind == 2 and "signup" in s.name]
    in_trace = [s for s in spans if s.trace_id == request.trace_id]
    names = {s.name for s in in_trace}
    assert {
        "run/signup:create_account",
        "run/signup:send_welcome",
        "run/signup:grant_trial",
        "run/signup:notify_team",
    } <= names


@pytest.mark.e2e
@pytest.mark.parametrize("module", APPS)
def test_malformed_address_is_refused_before_anything_is_queued(
    module: str, receiver: OTLPReceiver, redis: Any
) -> None:
    server = ExampleServer(module, _env(receiver))
    try:
        status, body = server.post("/signup", {"email": "not-an-address"})
    finally:
        server.stop()
    assert status == 400
    assert "email must be an address" in body["error"]
    assert not [k for k in redis.keys("*") if not k.startswith("_kombu")]
