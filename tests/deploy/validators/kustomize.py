"""What ``kustomize build`` (``kubectl apply -k``) emits, rendered in Python.

CI has no kustomize binary and no network, so the suite renders the kustomizations itself, for
exactly the features deploy/k8s uses: resources (files, or other kustomizations such as an
overlay's ``..``), ``namespace``, ``labels``, ``images``, and ``patches`` that delete a resource
(``$patch: delete``). Anything else is refused rather than half-rendered, and a test compares
the result with ``kubectl kustomize`` wherever kubectl is installed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.validators.common import load_yaml_documents, read_yaml

_KUSTOMIZATION_KEYS = {
    "apiVersion",
    "kind",
    "namespace",
    "namePrefix",
    "nameSuffix",
    "labels",
    "commonLabels",
    "commonAnnotations",
    "resources",
    "images",
    "configMapGenerator",
    "secretGenerator",
    "patches",
    "replicas",
}
_RENDERED_KEYS = {"apiVersion", "kind", "namespace", "labels", "resources", "images", "patches"}
# Kinds the namespace transformer leaves alone (cluster-scoped).
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def render_kustomization(directory: Path) -> list[dict[str, Any]]:
    """The resources of ``directory``'s kustomization, transformed; ValueError if broken."""
    kustomization = read_yaml(directory / "kustomization.yaml")
    if not isinstance(kustomization, dict):
        raise ValueError("kustomization.yaml is not a mapping")
    unknown = set(kustomization) - _KUSTOMIZATION_KEYS
    if unknown:
        raise ValueError(f"kustomization.yaml: unknown fields {sorted(unknown)}")
    if kustomization.get("kind") != "Kustomization":
        raise ValueError("kustomization.yaml: kind is not Kustomization")
    unsupported = set(kustomization) - _RENDERED_KEYS
    if unsupported:
        raise ValueError(f"kustomization.yaml: not rendered by the tests: {sorted(unsupported)}")
    resources: list[dict[str, Any]] = []
    for entry in kustomization.get("resources") or []:
        target = directory / entry
        if target.is_dir():
            resources.extend(render_kustomization(target))
        elif target.is_file():
            resources.extend(load_yaml_documents(target))
        else:
            raise ValueError(f"kustomization.yaml: resource {entry} does not exist")
    for resource in resources:
        if not isinstance(resource, dict) or "kind" not in resource:
            raise ValueError(f"not a Kubernetes resource: {resource!r:.80}")
    resources = _apply_patches(directory, kustomization.get("patches") or [], resources)
    _transform(kustomization, resources)
    return resources


def _transform(kustomization: Mapping[str, Any], resources: list[dict[str, Any]]) -> None:
    namespace = kustomization.get("namespace")
    extra_labels: dict[str, str] = {}
    for group in kustomization.get("labels") or []:
        extra_labels.update(group.get("pairs") or {})
    images = {i["name"]: i for i in kustomization.get("images") or []}
    for resource in resources:
        metadata = resource.setdefault("metadata", {})
        if namespace and resource["kind"] not in CLUSTER_SCOPED:
            metadata["namespace"] = namespace
        if extra_labels:
            metadata["labels"] = {**(metadata.get("labels") or {}), **extra_labels}
        for container in containers(resource):
            override = images.get(container.get("image", "").split(":")[0])
            if override:
                image = override.get("newName", override["name"])
                tag = override.get("newTag")
                container["image"] = f"{image}:{tag}" if tag else image


def _apply_patches(
    directory: Path, patches: list[dict[str, Any]], resources: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Strategic-merge patches that delete a resource; each must match exactly one."""
    for entry in patches:
        if "path" in entry:
            documents = load_yaml_documents(directory / entry["path"])
        else:
            documents = [d for d in yaml.safe_load_all(entry.get("patch") or "") if d]
        for patch in documents:
            if patch.get("$patch") != "delete":
                raise ValueError(f"patch {patch!r:.60}: only `$patch: delete` is rendered")
            selector = {
                "kind": patch.get("kind"),
                "name": (patch.get("metadata") or {}).get("name"),
                **(entry.get("target") or {}),
            }
            matched = [r for r in resources if _matches(r, selector)]
            if len(matched) != 1:
                raise ValueError(f"patch target {selector} matches {len(matched)} resources")
            resources = [r for r in resources if r is not matched[0]]
    return resources


def _matches(resource: Mapping[str, Any], selector: Mapping[str, Any]) -> bool:
    metadata = resource.get("metadata") or {}
    actual = {"kind": resource.get("kind"), "name": metadata.get("name")}
    if "namespace" in selector:
        actual["namespace"] = metadata.get("namespace")
    return all(actual.get(key) == value for key, value in selector.items() if value)


def pod_spec(resource: Mapping[str, Any]) -> dict[str, Any] | None:
    if resource.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        spec: dict[str, Any] = resource["spec"]["template"]["spec"]
        return spec
    return None


def pod_labels(resource: Mapping[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = resource["spec"]["template"]["metadata"].get("labels") or {}
    return labels


def containers(resource: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    spec = pod_spec(resource)
    if spec is not None:
        yield from spec.get("initContainers") or []
        yield from spec.get("containers") or []


def label(resource: Mapping[str, Any]) -> str:
    """``Kind/name``, how problems name a resource."""
    return f"{resource.get('kind')}/{(resource.get('metadata') or {}).get('name')}"


def find(resources: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    for resource in resources:
        if resource["kind"] == kind and resource["metadata"]["name"] == name:
            return resource
    return None
