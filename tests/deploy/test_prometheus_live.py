"""The shipped alerts, dashboard and autoscaler queries, evaluated by a real Prometheus.

Debian's Prometheus scrapes a real ``celery -A project worker`` serving ``/metrics``
(``OTEL_METRICS_EXPORTER=prometheus``, the Kubernetes layout) on a Redis of the test's own,
with the shipped ``prometheus.yml`` and ``alerts.yml``: rendered from those files with 1 s
scrape and evaluation intervals and every ``for:`` divided by :data:`TIME_SCALE`, nothing else
changed. Then, as in production:

1. 10,001 tasks wait in the paused queue ``low``, published an hour ago: the backlog and the
   latency alerts go pending, then fire; the autoscalers' query (KEDA's trigger,
   prometheus-adapter's rule) reads 10,001; every dashboard query evaluates without error on
   metrics the worker really exported; and the failure-rate alert stays quiet for 1 failure
   among a handful of runs (its minimum volume);
2. Redis stops: the Redis alert fires for that worker;
3. the worker stops: the no-workers alert fires.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.live import PrometheusServer, fill_queue, free_port, publish
from tests.deploy.tools import prometheus_tools
from tests.deploy.validators import DEPLOY, dashboard_queries, metric_names, render_kustomization
from tests.deploy.validators.autoscaling import adapter_query, adapter_rules
from tests.deploy.validators.prometheus import render_prometheus_config, render_rules

TIME_SCALE = 1 / 150  # for: 10m -> 4s, 2m -> 1s (the minimum)
INTERVAL = 1.0  # seconds: scrape and rule evaluation
ALERT_TIMEOUT = 60.0  # seconds for any one alert to fire: it takes about for: + 3 intervals
BACKLOG = 10_001
BACKLOG_AGE = 3600.0  # seconds: the backlog's publish times are moved back by this much
NAMESPACE = "celery-kit"  # what a PodMonitor's relabelling adds, and the autoscalers filter on


def _autoscaler_queries() -> dict[str, str]:
    keda = render_kustomization(DEPLOY / "k8s")
    hpa = render_kustomization(DEPLOY / "k8s-hpa")
    queries = {
        f"KEDA trigger {t['name']}": t["metadata"]["query"]
        for r in keda
        if r["kind"] == "ScaledObject"
        for t in r["spec"]["triggers"]
    }
    for name, rule in adapter_rules(hpa):
        queries[f"prometheus-adapter {name}"] = adapter_query(rule, namespace=NAMESPACE)
    return queries


def _wait_for_alert(prometheus: PrometheusServer, name: str, **labels: str) -> None:
    """Until ``name`` fires with ``labels``; then it must also have been pending before."""
    from tests.support.polling import eventually

    def firing() -> bool:
        return any(
            all(a.get(k) == v for k, v in labels.items()) for a in prometheus.alerts(name, "firing")
        )

    try:
        eventually(firing, timeout=ALERT_TIMEOUT, interval=0.2)
    except AssertionError:
        raise AssertionError(
            f"{name} {labels} did not fire; alerts: {prometheus.api('alerts')}; "
            f"prometheus log: {prometheus.log_tail()}"
        ) from None
    matchers = "".join(f',{k}="{v}"' for k, v in labels.items())
    pending = prometheus.query(
        f'count_over_time(ALERTS{{alertname="{name}",alertstate="pending"{matchers}}}[10m])'
    )
    assert pending, f"{name} fired without having been pending first"


def _wait_for_metrics(prometheus: PrometheusServer, names: set[str]) -> None:
    from tests.support.polling import eventually

    def stored() -> set[str]:
        return names - set(prometheus.api("label/__name__/values"))

    try:
        eventually(lambda: not stored(), timeout=ALERT_TIMEOUT, interval=0.2)
    except AssertionError:
        raise AssertionError(f"never scraped from the worker: {sorted(stored())}") from None


def _value(prometheus: PrometheusServer, expr: str) -> float | None:
    result = prometheus.query(expr)
    return float(result[0]["value"][1]) if result else None


def _is(prometheus: PrometheusServer, expr: str, expected: float) -> bool:
    return _value(prometheus, expr) == expected


@pytest.mark.e2e
def test_alerts_dashboard_and_autoscaler_queries_in_a_real_prometheus_on_a_real_worker(
    start_worker: Any, private_redis: Any, tmp_path: Path
) -> None:
    import redis as redis_py

    from tests.support.cli import run_kit
    from tests.support.polling import eventually

    tools = prometheus_tools()
    metrics_port, prometheus_port = free_port(), free_port()
    worker_address = f"127.0.0.1:{metrics_port}"
    rules = tmp_path / "alerts.yml"
    rules.write_text(
        yaml.safe_dump(render_rules(DEPLOY / "prometheus" / "alerts.yml", time_scale=TIME_SCALE))
    )
    config = render_prometheus_config(
        DEPLOY / "prometheus" / "prometheus.yml",
        interval=INTERVAL,
        rule_files=[rules],
        targets={
            "otel-collector": [worker_address],
            "prometheus": [f"127.0.0.1:{prometheus_port}"],
        },
        target_labels={"namespace": NAMESPACE},
    )

    # The backlog waits in a paused queue from before the worker starts, so none of it runs;
    # the other tasks make the worker count a success, an enqueue, a retry and a failure.
    done = run_kit("queue", "pause", "low", env={"REDIS_URL": private_redis.url})
    assert done.returncode == 0, done.stdout + done.stderr
    publish(
        private_redis.url,
        "low=tests.deploy.succeed",
        "default=tests.deploy.succeed*3",
        "default=tests.deploy.enqueue_add",
        "default=tests.deploy.retry_once",
        "default=tests.deploy.fail_for_good",
    )
    with redis_py.Redis.from_url(private_redis.url) as client:
        fill_queue(client, "low", BACKLOG, published_ago=BACKLOG_AGE)

    with PrometheusServer(tools.prometheus, config, tmp_path / "prometheus", prometheus_port) as p:
        worker = start_worker(
            concurrency=1,
            env={
                "REDIS_URL": private_redis.url,
                "KIT_IMPORTS": "tests.deploy.metric_tasks",
                "OTEL_SDK_DISABLED": "false",
                "OTEL_TRACES_EXPORTER": "none",
                "OTEL_METRICS_EXPORTER": "prometheus",
                "OTEL_EXPORTER_PROMETHEUS_HOST": "127.0.0.1",
                "OTEL_EXPORTER_PROMETHEUS_PORT": str(metrics_port),
                "OTEL_METRIC_EXPORT_INTERVAL": "200",
            },
        )

        # 1. The backlog.
        _wait_for_alert(p, "CeleryKitQueueBacklog", task_queue="low")
        _wait_for_alert(p, "CeleryKitQueueLatencyHigh", task_queue="low")
        latency = _value(p, 'max(kit_queue_latency_seconds{task_queue="low"})')
        assert latency is not None and latency >= BACKLOG_AGE
        assert not p.query('ALERTS{alertname="CeleryKitQueueLatencyHigh",task_queue="default"}')
        for where, expr in _autoscaler_queries().items():
            try:
                eventually(partial(_is, p, expr, BACKLOG), timeout=ALERT_TIMEOUT)
            except AssertionError:
                raise AssertionError(f"{where}: {expr} = {_value(p, expr)}") from None

        queries = dashboard_queries(DEPLOY / "grafana" / "dashboards" / "celery-kit.json")
        _wait_for_metrics(p, set().union(*(metric_names(expr) for _, expr in queries)))
        for _title, expr in queries:
            p.query(expr)  # PrometheusError, naming the query, if Prometheus rejects it
        queues = p.api("label/task_queue/values", **{"match[]": "kit_queue_depth"})
        assert {"critical", "default", "low"} <= set(queues)
        assert _value(p, 'sum(kit_tasks_failed_total{task_name="tests.deploy.fail_for_good"})')
        failure_alerts = 'count_over_time(ALERTS{alertname="CeleryKitTaskFailureRateHigh"}[10m])'
        assert not p.query(failure_alerts), "1 failure in a few runs is not a failure rate"

        # 2. Redis goes away; the worker lives on.
        private_redis.stop()
        _wait_for_alert(p, "CeleryKitRedisConnectionFailure", instance=worker_address)

        # 3. The worker goes away.
        worker.kill()
        _wait_for_alert(p, "CeleryKitAllWorkersDown")
