"""Kubernetes: every resource ``kustomize build`` would emit, checked against the API's schemas
with unknown fields refused (as ``kubectl apply --validate=strict`` does), then the references
between resources that the API server accepts but a cluster would trip over.

Built-in kinds use ``kubernetes-validate`` (the OpenAPI schemas of each Kubernetes release).
Custom resources (KEDA's ScaledObject) use the CRD that defines them, shipped under
``tests/deploy/schemas/`` (no network at test time), made strict the same way: an object
schema that lists its properties accepts no others, and ``metadata`` is checked as the
ObjectMeta of a built-in kind.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.validators.autoscaling import autoscaling_problems
from tests.deploy.validators.collector import collector_deployment_problems
from tests.deploy.validators.common import Problems, load_yaml_documents, schema_errors
from tests.deploy.validators.kustomize import (
    CLUSTER_SCOPED,
    containers,
    label,
    pod_labels,
    pod_spec,
    render_kustomization,
)
from tests.deploy.validators.network_policies import network_policy_problems

K8S_VERSION = "1.31.0"
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def check_kubernetes(directory: Path) -> Problems:
    """Render ``directory``, validate every resource, then every cross-resource check."""
    try:
        resources = render_kustomization(directory)
    except (yaml.YAMLError, ValueError, KeyError, TypeError) as exc:
        return [f"kustomize: {exc}"]
    problems: Problems = []
    for resource in resources:
        problems.extend(resource_problems(resource))
    if problems:
        return problems
    return [
        *reference_problems(resources),
        *autoscaling_problems(resources),
        *network_policy_problems(resources),
        *collector_deployment_problems(resources),
    ]


def resource_problems(resource: dict[str, Any]) -> Problems:
    """Schema problems of one resource: a built-in kind, or a custom one shipped here."""
    return list(_cached_resource_problems(json.dumps(resource, sort_keys=True)))


@functools.lru_cache(maxsize=1024)
def _cached_resource_problems(canonical: str) -> tuple[str, ...]:
    """By content: kubernetes-validate reads its schema files on every call, and the broken
    copies validate the same unchanged resources dozens of times."""
    return tuple(_resource_problems(json.loads(canonical)))


def _resource_problems(resource: dict[str, Any]) -> Problems:
    import kubernetes_validate

    kind = (str(resource.get("apiVersion")), str(resource.get("kind")))
    crd_schema = custom_resource_schemas().get(kind)
    if crd_schema is not None:
        return _custom_resource_problems(resource, crd_schema)
    try:
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        return [f"{label(resource)}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{label(resource)}: unknown kind or apiVersion: {exc}"]
    return []


def _custom_resource_problems(resource: dict[str, Any], schema: Mapping[str, Any]) -> Problems:
    problems = [f"{label(resource)}: {p}" for p in schema_errors(resource, schema)]
    # ObjectMeta is the same for every kind: check it as a ConfigMap's.
    problems.extend(
        resource_problems(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": resource.get("metadata") or {}}
        )
    )
    return problems


@functools.cache
def custom_resource_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict JSON schema, from every CRD under tests/deploy/schemas."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        for crd in load_yaml_documents(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = _strict(version["schema"]["openAPIV3Schema"])
                schemas[f"{group}/{version['name']}", kind] = schema
    return schemas


def _strict(schema: Any) -> Any:
    """The API server's strict field validation: no field a structural schema does not list."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


def reference_problems(resources: list[dict[str, Any]]) -> Problems:
    """What the API server accepts but a cluster would trip over: dangling names."""
    problems: Problems = []
    names = {(r["kind"], r["metadata"]["name"]) for r in resources}
    workloads = [r for r in resources if pod_spec(r) is not None]
    for workload in workloads:
        where = label(workload)
        selector = workload["spec"]["selector"].get("matchLabels") or {}
        if any(pod_labels(workload).get(k) != v for k, v in selector.items()):
            problems.append(f"{where}: selector does not match its pod template's labels")
        for volume in (pod_spec(workload) or {}).get("volumes") or []:
            for kind, key, name_key in (
                ("ConfigMap", "configMap", "name"),
                ("Secret", "secret", "secretName"),
            ):
                if key in volume and (kind, volume[key][name_key]) not in names:
                    problems.append(f"{where}: volume {volume['name']} names missing {kind}")
        for container in containers(workload):
            for source in container.get("envFrom") or []:
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if key in source and (kind, source[key]["name"]) not in names:
                        problems.append(f"{where}: envFrom names missing {kind}")
            for variable in container.get("env") or []:
                ref = (variable.get("valueFrom") or {}).get("secretKeyRef")
                if ref and not _secret_has(resources, ref["name"], ref["key"]):
                    problems.append(f"{where}: {variable['name']} names missing secret key")
    for resource in resources:
        kind, name = resource["kind"], resource["metadata"]["name"]
        if kind not in CLUSTER_SCOPED and not resource["metadata"].get("namespace"):
            problems.append(f"{kind}/{name} has no namespace: it would land in kubectl's current")
        if kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            target = resource["spec"]["scaleTargetRef"]
            target_kind = target.get("kind", "Deployment")
            if (target_kind, target["name"]) not in names:
                problems.append(f"{kind}/{name}: scales missing {target_kind}/{target['name']}")
        if kind in ("Service", "PodDisruptionBudget"):
            selector = resource["spec"].get("selector") or {}
            selector = selector.get("matchLabels", selector)
            if selector and not any(
                all(pod_labels(w).get(k) == v for k, v in selector.items()) for w in workloads
            ):
                problems.append(f"{kind}/{name}: selector matches no pod template")
    return problems


def _secret_has(resources: list[dict[str, Any]], name: str, key: str) -> bool:
    return any(
        r["kind"] == "Secret"
        and r["metadata"]["name"] == name
        and key in {**(r.get("data") or {}), **(r.get("stringData") or {})}
        for r in resources
    )
