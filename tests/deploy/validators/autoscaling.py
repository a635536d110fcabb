"""The worker autoscalers: KEDA's ScaledObject, or the HPA with prometheus-adapter's rule.

The CRD schema accepts any string map as a trigger's metadata, and prometheus-adapter's rules
live in a string inside a ConfigMap: neither says whether the query works. So the trigger's
metadata is checked against the Prometheus scaler's fields, every query (the trigger's, the
adapter rule's rendered the way the adapter renders it) is parsed as PromQL, the HPA's metric
must be one the adapter serves, and one Deployment must not have two autoscalers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from tests.deploy.validators.common import Problems
from tests.deploy.validators.kustomize import label
from tests.deploy.validators.promql import parse_promql

# KEDA's Prometheus scaler (https://keda.sh/docs/latest/scalers/prometheus/).
_PROMETHEUS_REQUIRED = {"serverAddress", "query", "threshold"}
_PROMETHEUS_FIELDS = {
    *_PROMETHEUS_REQUIRED,
    "activationThreshold",
    "namespace",
    "customHeaders",
    "ignoreNullValues",
    "queryParameters",
    "unsafeSsl",
    "timeout",
}
ADAPTER_CONFIG_KEY = "config.yaml"


def autoscaling_problems(resources: list[dict[str, Any]]) -> Problems:
    problems: Problems = []
    targets: dict[str, list[str]] = {}
    for resource in resources:
        if resource["kind"] in ("ScaledObject", "HorizontalPodAutoscaler"):
            name = resource["spec"]["scaleTargetRef"]["name"]
            targets.setdefault(name, []).append(label(resource))
        if resource["kind"] == "ScaledObject":
            problems.extend(_scaled_object_problems(resource))
    for target, scalers in targets.items():
        if len(scalers) > 1:
            problems.append(f"{target} has {len(scalers)} autoscalers, which fight: {scalers}")
    served = set()
    for name, rule in adapter_rules(resources):
        served.add(name)
        try:
            parse_promql(adapter_query(rule, namespace="celery-kit"))
        except ValueError as exc:
            problems.append(f"adapter rule {name}: metricsQuery does not parse: {exc}")
    for resource in resources:
        if resource["kind"] != "HorizontalPodAutoscaler":
            continue
        for metric in resource["spec"].get("metrics") or []:
            external = metric.get("external")
            if external and served and external["metric"]["name"] not in served:
                problems.append(
                    f"{label(resource)}: no adapter rule serves {external['metric']['name']}"
                )
    return problems


def _scaled_object_problems(resource: Mapping[str, Any]) -> Problems:
    problems: Problems = []
    spec = resource["spec"]
    if spec.get("minReplicaCount", 0) > spec.get("maxReplicaCount", 100):
        problems.append(f"{label(resource)}: minReplicaCount exceeds maxReplicaCount")
    for trigger in spec["triggers"]:
        where = f"{label(resource)}: trigger {trigger.get('name', trigger['type'])}"
        if trigger["type"] != "prometheus":
            continue
        metadata = trigger["metadata"]
        missing = _PROMETHEUS_REQUIRED - set(metadata)
        unknown = set(metadata) - _PROMETHEUS_FIELDS
        if missing:
            problems.append(f"{where}: missing {sorted(missing)}")
        if unknown:
            problems.append(f"{where}: unknown metadata {sorted(unknown)}")
        try:
            float(metadata.get("threshold", ""))
        except ValueError:
            problems.append(f"{where}: threshold is not a number: {metadata.get('threshold')}")
        try:
            parse_promql(metadata.get("query", ""))
        except ValueError as exc:
            problems.append(f"{where}: query does not parse: {exc}")
    return problems


def adapter_rules(resources: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(served metric name, rule) of every prometheus-adapter external rule rendered."""
    rules = []
    for resource in resources:
        if resource["kind"] != "ConfigMap" or "prometheus-adapter" not in (
            resource["metadata"].get("labels") or {}
        ).get("app.kubernetes.io/name", ""):
            continue
        config = yaml.safe_load(resource["data"][ADAPTER_CONFIG_KEY])
        for rule in config.get("externalRules") or []:
            rules.append((rule["name"]["as"], rule))
    return rules


def adapter_query(rule: Mapping[str, Any], *, namespace: str) -> str:
    """The query prometheus-adapter sends for an external metric of ``namespace``: its
    metricsQuery template with the series, label matchers and group-by filled in."""
    series = rule["seriesQuery"].split("{")[0].strip("'\" ")
    text = str(rule["metricsQuery"])
    for placeholder, value in (
        ("<<.Series>>", series),
        ("<<.LabelMatchers>>", f'namespace="{namespace}"'),
        ("<<.GroupBy>>", "namespace"),
    ):
        text = text.replace(placeholder, value)
    return text
