"""Each validator fails on a deliberately broken copy of the file it checks.

The whole deploy/ tree is copied, one file is broken the way a careless edit would break it,
and the validator must name the problem. A check that cannot fail would prove nothing.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.validators import (
    DEPLOY,
    Problems,
    check_collector_config,
    check_compose,
    check_dashboard,
    check_dockerfile_lint,
    check_dockerfile_structure,
    check_kubernetes,
    check_parses,
    check_prometheus_config,
    check_rules,
    datasource_uids,
    render_compose,
)
from tests.deploy.validators.prometheus import promtool_test_rules


@dataclass(frozen=True)
class Breakage:
    id: str
    file: str
    old: str
    new: str
    check: Callable[[Path], Problems]
    expected: str  # a fragment of the problem the check must report


def _compose(root: Path) -> Problems:
    return check_compose(root / "compose.yaml", root / ".env.example")


def _dashboard(root: Path) -> Problems:
    return check_dashboard(
        root / "grafana/dashboards/celery-kit.json", datasource_uids(root / "grafana/provisioning")
    )


def _k8s(root: Path) -> Problems:
    return check_kubernetes(root / "k8s")


def _k8s_hpa(root: Path) -> Problems:
    return check_kubernetes(root / "k8s-hpa")


def _rule_tests(root: Path) -> Problems:
    return promtool_test_rules(root / "prometheus/alerts.yml")


def _prometheus(root: Path) -> Problems:
    compose = render_compose(root / "compose.yaml", root / ".env.example")
    return check_prometheus_config(root / "prometheus/prometheus.yml", compose)


BREAKAGES = [
    Breakage(
        "yaml-syntax",
        "compose.yaml",
        "services:\n  redis:",
        "services:\n  redis: [",
        lambda r: check_parses(r / "compose.yaml"),
        "does not parse",
    ),
    Breakage(
        "dockerfile-runs-as-root",
        "Dockerfile",
        "USER 10001:10001\n",
        "USER root\n",
        lambda r: check_dockerfile_structure(r / "Dockerfile"),
        "non-root",
    ),
    Breakage(
        "dockerfile-single-stage",
        "Dockerfile",
        "FROM python:${PYTHON_VERSION}-slim-bookworm AS build\n",
        "",
        lambda r: check_dockerfile_structure(r / "Dockerfile"),
        "multi-stage",
    ),
    Breakage(
        "dockerfile-no-healthcheck",
        "Dockerfile",
        "HEALTHCHECK --interval",
        "# HEALTHCHECK --i",
        lambda r: check_dockerfile_structure(r / "Dockerfile"),
        "HEALTHCHECK",
    ),
    Breakage(
        "dockerfile-default-is-beat",
        "Dockerfile",
        'CMD ["worker", ',
        'CMD ["beat", ',
        lambda r: check_dockerfile_structure(r / "Dockerfile"),
        "celery -A project worker",
    ),
    Breakage(
        "dockerfile-hadolint",
        "Dockerfile",
        "RUN python -m venv /opt/venv\n",
        "RUN apt-get update && apt-get install -y curl\nRUN python -m venv /opt/venv\n",
        lambda r: check_dockerfile_lint(r / "Dockerfile"),
        "DL3008",
    ),
    Breakage(
        "compose-unknown-key",
        "compose.yaml",
        "    image: redis:7.4-alpine",
        "    imag: redis:7.4-alpine",
        _compose,
        "imag",
    ),
    Breakage(
        "compose-missing-required-variable",
        ".env.example",
        "REDIS_PASSWORD=change-me",
        "X=",
        _compose,
        "REDIS_PASSWORD",
    ),
    Breakage(
        "compose-unknown-dependency",
        "compose.yaml",
        "      - jaeger\n",
        "      - jaegre\n",
        _compose,
        "unknown service jaegre",
    ),
    Breakage(
        "compose-missing-bind-mount",
        "compose.yaml",
        "./prometheus/alerts.yml:",
        "./prometheus/alert.yml:",
        _compose,
        "missing ./prometheus/alert.yml",
    ),
    Breakage(
        "k8s-unknown-field",
        "k8s/worker-deployment.yaml",
        "          livenessProbe:",
        "          livenessProbes:",
        lambda r: check_kubernetes(r / "k8s"),
        "livenessProbes",
    ),
    Breakage(
        "k8s-wrong-type",
        "k8s/worker-deployment.yaml",
        "terminationGracePeriodSeconds: 60",
        "terminationGracePeriodSeconds: sixty",
        lambda r: check_kubernetes(r / "k8s"),
        "sixty",
    ),
    Breakage(
        "k8s-missing-resource-file",
        "k8s/kustomization.yaml",
        "  - worker-pdb.yaml",
        "  - worker-pdb.yml",
        lambda r: check_kubernetes(r / "k8s"),
        "does not exist",
    ),
    Breakage(
        "k8s-dangling-hpa-target",
        "k8s-hpa/worker-hpa.yaml",
        "    name: celery-kit-worker\n  min",
        "    name: celery-kit-workers\n  min",
        lambda r: check_kubernetes(r / "k8s-hpa"),
        "scales missing",
    ),
    Breakage(
        "k8s-missing-secret-key",
        "k8s/flower.yaml",
        "key: flower-basic-auth",
        "key: flower-auth",
        lambda r: check_kubernetes(r / "k8s"),
        "FLOWER_BASIC_AUTH",
    ),
    Breakage(
        "keda-unknown-field",
        "k8s/worker-scaledobject.yaml",
        "  cooldownPeriod: 300",
        "  cooldownPeriods: 300",
        _k8s,
        "cooldownPeriods",
    ),
    Breakage(
        "keda-wrong-type",
        "k8s/worker-scaledobject.yaml",
        "minReplicaCount: 3",
        "minReplicaCount: three",
        _k8s,
        "three",
    ),
    Breakage(
        "keda-trigger-metadata-typo",
        "k8s/worker-scaledobject.yaml",
        "serverAddress:",
        "serverAdress:",
        _k8s,
        "missing ['serverAddress']",
    ),
    Breakage(
        "keda-trigger-bad-query",
        "k8s/worker-scaledobject.yaml",
        "query: sum(max by (task_queue)",
        "query: sum(max by (task_queue",
        _k8s,
        "query does not parse",
    ),
    Breakage(
        "keda-and-hpa-both",
        "k8s-hpa/kustomization.yaml",
        "patches:\n",
        "unused:\n",
        _k8s_hpa,
        "unknown fields ['unused']",
    ),
    Breakage(
        "hpa-metric-not-served",
        "k8s-hpa/worker-hpa.yaml",
        "name: kit_queue_depth",
        "name: kit_queue_length",
        _k8s_hpa,
        "no adapter rule serves kit_queue_length",
    ),
    Breakage(
        "hpa-without-namespace",
        "k8s-hpa/worker-hpa.yaml",
        "  namespace: celery-kit\n",
        "",
        _k8s_hpa,
        "has no namespace",
    ),
    Breakage(
        "adapter-bad-query",
        "k8s-hpa/prometheus-adapter.yaml",
        "(<<.Series>>{<<.LabelMatchers>>}))",
        "(<<.Series>>{<<.LabelMatchers>>})",
        _k8s_hpa,
        "metricsQuery does not parse",
    ),
    Breakage(
        "netpol-redis-open-to-all",
        "k8s/networkpolicies.yaml",
        "      ports:\n        - port: redis\n",
        "      ports:\n        - port: redis\n    - {}\n",
        _k8s,
        "prometheus reaches redis:6379",
    ),
    Breakage(
        "netpol-otlp-beyond-the-collector",
        "k8s/networkpolicies.yaml",
        "        - port: 5432\n",
        "        - port: 5432\n        - port: 4317\n",
        _k8s,
        "worker sends OTLP to hosted-otlp:4317",
    ),
    Breakage(
        "netpol-flower-open",
        "k8s/networkpolicies.yaml",
        "              kubernetes.io/metadata.name: ingress-nginx\n",
        "              {}\n",
        _k8s,
        "prometheus reaches flower:5555",
    ),
    Breakage(
        "netpol-selects-nothing",
        "k8s/networkpolicies.yaml",
        "      app.kubernetes.io/name: otel-collector\n  policyTypes",
        "      app.kubernetes.io/name: otel-colector\n  policyTypes",
        _k8s,
        "NetworkPolicy/otel-collector: podSelector selects no pod",
    ),
    Breakage(
        "netpol-unknown-port-name",
        "k8s/networkpolicies.yaml",
        "        - port: metrics\n",
        "        - port: metric\n",
        _k8s,
        "no selected pod has a port named metric",
    ),
    Breakage(
        "collector-k8s-config-not-mounted",
        "k8s/otel-collector.yaml",
        "--config=/etc/otelcol-contrib/config.yaml",
        "--config=/etc/otelcol/config.yaml",
        _k8s,
        "--config names no key",
    ),
    Breakage(
        "collector-k8s-service-without-otlp",
        "k8s/otel-collector.yaml",
        "    - name: otlp-grpc\n      port: 4317\n      targetPort: otlp-grpc\n"
        "      appProtocol: grpc\n",
        "",
        _k8s,
        "does not expose OTLP grpc port 4317",
    ),
    Breakage(
        "collector-k8s-undefined-exporter",
        "k8s/otel-collector.yaml",
        "exporters: [otlp/jaeger]",
        "exporters: [otlp/tempo]",
        _k8s,
        "otlp/tempo",
    ),
    Breakage(
        "rules-backlog-threshold",
        "prometheus/alerts.yml",
        "> 10000",
        "> 20000",
        _rule_tests,
        "CeleryKitQueueBacklog",
    ),
    Breakage(
        "rules-failure-rate-without-minimum-volume",
        "prometheus/alerts.yml",
        ">= 20",
        ">= 2",
        _rule_tests,
        'task_name="rare"',
    ),
    Breakage(
        "rules-workers-down-needs-a-series",
        "prometheus/alerts.yml",
        "(sum(kit_workers_alive) or on() vector(0)) < 1",
        "sum(kit_workers_alive) < 1",
        _rule_tests,
        "CeleryKitAllWorkersDown",
    ),
    Breakage(
        "rules-test-annotation",
        "prometheus/alerts.yml",
        "cannot reach Redis",
        "has lost Redis",
        _rule_tests,
        "has lost Redis",
    ),
    Breakage(
        "rules-bad-promql",
        "prometheus/alerts.yml",
        "max by (task_queue) (kit_queue_depth)",
        "max by (task_queue) (kit_queue_depth",
        lambda r: check_rules(r / "prometheus/alerts.yml"),
        "does not parse",
    ),
    Breakage(
        "rules-bad-duration",
        "prometheus/alerts.yml",
        "for: 10m",
        "for: 10 minutes",
        lambda r: check_rules(r / "prometheus/alerts.yml"),
        "10 minutes",
    ),
    Breakage(
        "rules-no-for",
        "prometheus/alerts.yml",
        "        for: 2m\n",
        "",
        lambda r: check_rules(r / "prometheus/alerts.yml"),
        "no `for:`",
    ),
    Breakage(
        "dashboard-bad-query",
        "grafana/dashboards/celery-kit.json",
        '"expr": "max by (task_queue) (kit_queue_depth',
        '"expr": "max by (task_queue) (rate(',
        _dashboard,
        "does not parse",
    ),
    Breakage(
        "dashboard-unknown-datasource",
        "grafana/provisioning/datasources/datasources.yaml",
        "uid: prometheus",
        "uid: prom",
        _dashboard,
        "unknown datasource",
    ),
    Breakage(
        "collector-undefined-exporter",
        "otel-collector/config.yaml",
        "exporters: [otlp/jaeger]",
        "exporters: [otlp/tempo]",
        lambda r: check_collector_config(r / "otel-collector/config.yaml"),
        "otlp/tempo",
    ),
    Breakage(
        "prometheus-unmounted-rules",
        "prometheus/prometheus.yml",
        "/etc/prometheus/alerts.yml",
        "/etc/prometheus/rules.yml",
        _prometheus,
        "not mounted",
    ),
]


@pytest.mark.parametrize("breakage", BREAKAGES, ids=[b.id for b in BREAKAGES])
def test_validator_reports_a_deliberately_broken_copy(breakage: Breakage, tmp_path: Path) -> None:
    root = tmp_path / "deploy"
    shutil.copytree(DEPLOY, root)
    target = root / breakage.file
    text = target.read_text()
    assert breakage.old in text, f"{breakage.file} changed: update this breakage"
    assert breakage.check(root) == [], "the intact copy must pass, or the test proves nothing"
    target.write_text(text.replace(breakage.old, breakage.new, 1))
    problems = breakage.check(root)
    assert problems, f"{breakage.id}: the broken copy passed"
    assert any(breakage.expected in p for p in problems), problems
