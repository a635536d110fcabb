"""Workflows and aggregation as seen in a real OTLP receiver: one trace per workflow with its id
on every span, and an aggregated task linked to the members it absorbed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.otlp import OTLPReceiver, Span, telemetry_env
from tests.support.polling import eventually


@pytest.mark.e2e
def test_a_workflow_is_one_trace_with_its_id_on_every_step_span(
    receiver: OTLPReceiver, start_worker: Any
) -> None:
    from tests.support.tasks import start_workflow

    start_worker(concurrency=2, env=telemetry_env(receiver))
    workflow_id = start_workflow.delay().get(timeout=60)

    def step_spans(spans: list[Span]) -> list[Span]:
        return [s for s in spans if s.attributes.get("workflow.id") == workflow_id]

    def complete(spans: list[Span]) -> bool:  # 4 steps: each published and run
        return len([s for s in step_spans(spans) if s.name.startswith("run/")]) == 4

    spans = receiver.wait_for_spans(complete)
    (starter,) = [s for s in spans if s.name == "run/tests.start_workflow"]
    in_trace = [s for s in spans if s.trace_id == starter.trace_id and s is not starter]
    (workflow_span,) = [s for s in in_trace if s.name == "workflow/chain"]
    assert workflow_span.parent_id == starter.span_id
    # Every span of the workflow, from its own span to the last step's run, carries its id.
    assert {s.name for s in in_trace} >= {
        "workflow/chain",
        "apply_async/tests.add",
        "run/tests.add",
        "apply_async/tests.total",
        "run/tests.total",
    }
    assert [s.name for s in in_trace if s.attributes.get("workflow.id") != workflow_id] == []
    # ...and nothing of the workflow escaped into another trace.
    assert {s.trace_id for s in step_spans(spans)} == {starter.trace_id}


@pytest.mark.e2e
def test_an_aggregated_task_links_to_the_spans_of_the_members_it_absorbed(
    receiver: OTLPReceiver, start_worker: Any
) -> None:
    from tests.support.tasks import hold

    start_worker(concurrency=2, env=telemetry_env(receiver))
    for n in range(3):
        hold.delay(n, "linked", 3).get(timeout=30)

    def collected(spans: list[Span]) -> bool:
        return any(s.name == "run/tests.collect" for s in spans)

    spans = receiver.wait_for_spans(collected)
    holds = eventually(lambda: [s for s in receiver.spans if s.name == "hold/tests.collect"], 30)
    (run_collect,) = [s for s in spans if s.name == "run/tests.collect"]
    assert sorted(run_collect.links) == sorted((s.trace_id, s.span_id) for s in holds)
    assert len(run_collect.links) == 3
    # Each member's hold span is in the trace of the task that held it.
    (held,) = eventually(
        lambda: [
            s
            for s in receiver.spans
            if s.name == "run/tests.hold" and s.trace_id == holds[0].trace_id
        ],
        30,
    )
    assert holds[0].parent_id == held.span_id
    # The aggregate starts a trace of its own: the flush runs in the worker's main process.
    assert run_collect.trace_id not in {h.trace_id for h in holds}
    eventually(lambda: receiver.total("kit.aggregation.held") == 3, 30)
