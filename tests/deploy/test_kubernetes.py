"""deploy/k8s (KEDA) and deploy/k8s-hpa (no KEDA): what they render to and what it promises.

Both render (as ``kubectl kustomize`` would, and do, where kubectl is installed) to resources
that pass strict validation: the API's schemas, KEDA's CRD for the ScaledObject, the
references between resources, the NetworkPolicies evaluated against who may reach whom, and
the Collector's wiring (see tests/deploy/validators/).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.validators import DEPLOY, check_kubernetes, load_yaml, render_kustomization
from tests.deploy.validators.autoscaling import adapter_query, adapter_rules
from tests.deploy.validators.collector import kubernetes_collector_config, without_addresses
from tests.deploy.validators.k8s import custom_resource_schemas, resource_problems
from tests.deploy.validators.network_policies import NEIGHBOURS, allows, endpoints

KUSTOMIZATIONS = ["k8s", "k8s-hpa"]
Resources = dict[tuple[str, str], dict[str, Any]]


def _render(directory: str) -> Resources:
    return {(r["kind"], r["metadata"]["name"]): r for r in render_kustomization(DEPLOY / directory)}


@pytest.fixture(scope="module")
def keda() -> Resources:
    return _render("k8s")


@pytest.fixture(scope="module")
def hpa() -> Resources:
    return _render("k8s-hpa")


def _soft_shutdown(resources: Resources) -> float:
    return float(resources["ConfigMap", "celery-kit-config"]["data"]["KIT_SOFT_SHUTDOWN_TIMEOUT"])


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_each_kustomization_passes_strict_validation_and_every_cross_check(directory: str) -> None:
    assert check_kubernetes(DEPLOY / directory) == []


@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_the_python_rendering_is_what_kubectl_kustomize_emits(directory: str) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the rendering is checked against it elsewhere")
    done = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / directory)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr

    def canonical(resources: list[dict[str, Any]]) -> list[str]:
        return sorted(json.dumps(r, sort_keys=True) for r in resources)

    emitted = [r for r in yaml.safe_load_all(done.stdout) if r]
    assert canonical(render_kustomization(DEPLOY / directory)) == canonical(emitted)


def test_the_default_build_has_keda_network_policies_and_the_collector(keda: Resources) -> None:
    assert ("ScaledObject", "celery-kit-worker") in keda
    assert not [key for key in keda if key[0] == "HorizontalPodAutoscaler"]
    assert {name for kind, name in keda if kind == "NetworkPolicy"} >= {"default-deny", "redis"}
    for kind in ("Deployment", "Service"):
        assert (kind, "otel-collector") in keda
    assert ("ConfigMap", "otel-collector-config") in keda


def test_the_scaled_object_is_checked_against_kedas_crd_with_unknown_fields_refused(
    keda: Resources,
) -> None:
    assert ("keda.sh/v1alpha1", "ScaledObject") in custom_resource_schemas()
    scaled = keda["ScaledObject", "celery-kit-worker"]
    assert resource_problems(scaled) == []
    typo = {**scaled, "spec": {**scaled["spec"], "minReplicas": 3}}
    assert any("minReplicas" in p for p in resource_problems(typo))
    bad_metadata = {**scaled, "metadata": {**scaled["metadata"], "label": {}}}
    assert any("label" in p for p in resource_problems(bad_metadata))


def test_keda_never_scales_workers_to_zero(keda: Resources) -> None:
    spec = keda["ScaledObject", "celery-kit-worker"]["spec"]
    assert spec["minReplicaCount"] >= 1
    assert "idleReplicaCount" not in spec
    assert spec["fallback"]["replicas"] >= spec["minReplicaCount"]


def test_keda_cools_down_longer_than_the_soft_shutdown(keda: Resources) -> None:
    spec = keda["ScaledObject", "celery-kit-worker"]["spec"]
    soft = _soft_shutdown(keda)
    assert spec["cooldownPeriod"] > soft
    scale_down = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert scale_down["stabilizationWindowSeconds"] > soft


def test_keda_and_the_hpa_alternative_scale_the_same_way(keda: Resources, hpa: Resources) -> None:
    scaled = keda["ScaledObject", "celery-kit-worker"]["spec"]
    autoscaler = hpa["HorizontalPodAutoscaler", "celery-kit-worker"]["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (
        autoscaler["minReplicas"],
        autoscaler["maxReplicas"],
    )
    [trigger] = scaled["triggers"]
    [metric] = autoscaler["metrics"]
    assert float(trigger["metadata"]["threshold"]) == float(
        metric["external"]["target"]["averageValue"]
    )
    assert trigger["metricType"] == metric["external"]["target"]["type"] == "AverageValue"
    [(name, rule)] = adapter_rules(list(hpa.values()))
    assert name == metric["external"]["metric"]["name"]
    namespace = keda["Deployment", "celery-kit-worker"]["metadata"]["namespace"]
    assert adapter_query(rule, namespace=namespace) == trigger["metadata"]["query"]
    behavior = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior == autoscaler["behavior"]


def test_the_hpa_overlay_replaces_the_scaled_object_and_ships_the_adapter_rule(
    hpa: Resources,
) -> None:
    assert not [key for key in hpa if key[0] == "ScaledObject"]
    adapter = hpa["ConfigMap", "adapter-config"]
    assert adapter["metadata"]["namespace"] == "monitoring"
    assert hpa["HorizontalPodAutoscaler", "celery-kit-worker"]["metadata"]["namespace"] == (
        "celery-kit"
    )


def test_the_kubernetes_collector_runs_the_pipelines_of_the_compose_one(keda: Resources) -> None:
    compose_config = load_yaml(DEPLOY / "otel-collector" / "config.yaml")
    kubernetes_config = kubernetes_collector_config(list(keda.values()))
    assert kubernetes_config is not None
    assert without_addresses(kubernetes_config) == without_addresses(compose_config)


def test_the_kits_processes_send_traces_to_the_collector_service(keda: Resources) -> None:
    endpoint = keda["ConfigMap", "celery-kit-config"]["data"]["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    host, port = endpoint.removeprefix("http://").rsplit(":", 1)
    ports = {p["name"]: p["port"] for p in keda["Service", host]["spec"]["ports"]}
    assert ports["otlp-grpc"] == int(port)


def test_the_policy_evaluator_allows_everything_without_policies(keda: Resources) -> None:
    """The proof that a denial found in the shipped policies comes from them."""
    pods = {e.name: e for e in endpoints(keda.values())}
    assert allows([], pods["stranger"], pods["redis"], 6379, "TCP")
    assert allows([], pods["worker"], pods["hosted-otlp"], 4317, "TCP")
    policies = [r for r in keda.values() if r["kind"] == "NetworkPolicy"]
    assert not allows(policies, pods["stranger"], pods["redis"], 6379, "TCP")
    assert not allows(policies, pods["worker"], pods["hosted-otlp"], 4317, "TCP")
    assert allows(policies, pods["worker"], pods["redis"], 6379, "TCP")
    assert {e.name for e in NEIGHBOURS} <= set(pods)


def test_every_yaml_file_under_k8s_is_a_resource_of_a_kustomization() -> None:
    rendered = {p.resolve() for d in KUSTOMIZATIONS for p in _resource_files(DEPLOY / d)}
    shipped = {
        p.resolve()
        for d in KUSTOMIZATIONS
        for p in (DEPLOY / d).glob("*.yaml")
        if p.name != "kustomization.yaml"
    }
    assert shipped == rendered


def _resource_files(directory: Path) -> list[Path]:
    entries = load_yaml(directory / "kustomization.yaml").get("resources") or []
    return [directory / e for e in entries if (directory / e).is_file()]
