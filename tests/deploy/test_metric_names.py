"""Every metric the alerts and the dashboard query is one the kit really exports.

The names come from a real run, not a list: a `celery -A project worker` subprocess with
OTEL_METRICS_EXPORTER=prometheus runs tasks that succeed, enqueue, retry and fail for good, and
its /metrics is scraped. The kit names metrics the way the OpenTelemetry Collector's Prometheus
exporter does (deploy/otel-collector/config.yaml), so these are the names Prometheus stores.
"""

from __future__ import annotations

import urllib.request
import uuid
from typing import Any

import pytest

from tests.deploy.live import free_port
from tests.deploy.validators import (
    DEPLOY,
    alert_rules,
    dashboard_queries,
    label_names,
    metric_names,
)

# Labels Prometheus adds at scrape time (job, instance) or that histograms carry (le).
SCRAPE_LABELS = {"job", "instance", "le"}


def _queries() -> dict[str, str]:
    queries = {
        f"alert {r['alert']}": str(r["expr"])
        for r in alert_rules(DEPLOY / "prometheus" / "alerts.yml")
    }
    for index, (title, expr) in enumerate(
        dashboard_queries(DEPLOY / "grafana" / "dashboards" / "celery-kit.json")
    ):
        queries[f"dashboard {title} #{index}"] = expr
    return queries


def _exported(port: int) -> tuple[set[str], set[str]]:
    """Sample names (with their _total/_bucket/_sum/_count suffixes) and label names."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    return {s.name for s in samples}, {label for s in samples for label in s.labels}


def test_the_queries_reference_the_kits_metrics_at_all() -> None:
    referenced = set().union(*(metric_names(e) for e in _queries().values()))
    assert {"kit_queue_depth", "kit_tasks_failed_total", "kit_workers_alive"} <= referenced


@pytest.mark.e2e
def test_every_metric_in_alerts_and_dashboard_is_exported_by_a_real_worker(
    start_worker: Any,
) -> None:
    from tests.deploy.metric_tasks import enqueue_add
    from tests.support.polling import eventually
    from tests.support.tasks import flaky, permanent

    port = free_port()
    start_worker(
        concurrency=1,
        env={
            "KIT_IMPORTS": "tests.support.tasks,tests.deploy.metric_tasks",
            "OTEL_SDK_DISABLED": "false",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "prometheus",
            "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
            "OTEL_EXPORTER_PROMETHEUS_PORT": str(port),
            "OTEL_METRIC_EXPORT_INTERVAL": "200",
        },
    )
    key = uuid.uuid4().hex
    enqueue_add.delay().get(timeout=60)  # succeeds, and enqueues tests.add from the worker
    assert flaky.delay(key, 1).get(timeout=60) == 1  # retried once, then succeeds
    failed = permanent.delay(key)
    failed.get(timeout=60, propagate=False)  # fails for good
    assert failed.failed()

    queries = _queries()
    referenced = set().union(*(metric_names(e) for e in queries.values()))

    def exported_all() -> tuple[set[str], set[str]] | None:
        names, labels = _exported(port)
        return (names, labels) if referenced <= names else None

    try:
        names, labels = eventually(exported_all, timeout=30, interval=0.2)
    except AssertionError:
        names, labels = _exported(port)
    missing = {
        where: sorted(metric_names(expr) - names)
        for where, expr in queries.items()
        if metric_names(expr) - names
    }
    assert not missing, f"not exported by the kit: {missing}; exported: {sorted(names)}"
    unknown_labels = {
        where: sorted(label_names(expr) - labels - SCRAPE_LABELS)
        for where, expr in queries.items()
        if label_names(expr) - labels - SCRAPE_LABELS
    }
    assert not unknown_labels, f"labels the kit does not export: {unknown_labels}"
