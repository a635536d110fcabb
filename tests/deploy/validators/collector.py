"""The OpenTelemetry Collector: its configuration (Compose's file, Kubernetes's ConfigMap) and,
on Kubernetes, the Deployment and Service that run it.

A Collector with an unknown component type or a pipeline naming an undefined component does
not start; a Deployment whose ``--config`` names no mounted key, or a Service without the OTLP
ports, starts and receives nothing. Both are caught here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.validators.common import Problems, Unreadable, read_yaml
from tests.deploy.validators.kustomize import containers, find, label

_COLLECTOR_SECTIONS = ("receivers", "processors", "exporters", "extensions", "connectors")
# Component types of the collector-contrib distribution this deployment relies on.
_KNOWN_COMPONENTS = {
    "receivers": {"otlp", "prometheus", "hostmetrics", "redis"},
    "processors": {"batch", "memory_limiter", "resource", "attributes", "filter", "transform"},
    "exporters": {"otlp", "otlphttp", "prometheus", "prometheusremotewrite", "debug"},
    "extensions": {"health_check", "pprof", "zpages"},
    "connectors": {"spanmetrics", "forward"},
}
COLLECTOR = "otel-collector"


def check_collector_config(path: Path) -> Problems:
    try:
        config = read_yaml(path)
    except Unreadable as exc:
        return [str(exc)]
    return collector_config_problems(config)


def collector_config_problems(config: Mapping[str, Any]) -> Problems:
    problems: Problems = []
    unknown_top = set(config) - {*_COLLECTOR_SECTIONS, "service"}
    if unknown_top:
        problems.append(f"unknown top-level keys {sorted(unknown_top)}")
    for section in _COLLECTOR_SECTIONS:
        for component in config.get(section) or {}:
            kind = component.split("/")[0]
            if kind not in _KNOWN_COMPONENTS[section]:
                problems.append(f"{section}: unknown component type {kind!r}")
    service = config.get("service") or {}
    for extension in service.get("extensions") or []:
        if extension not in (config.get("extensions") or {}):
            problems.append(f"service uses undefined extension {extension}")
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        problems.append("no pipelines")
    for name, pipeline in pipelines.items():
        if name.split("/")[0] not in ("traces", "metrics", "logs"):
            problems.append(f"pipeline {name}: not traces, metrics or logs")
        for role in ("receivers", "processors", "exporters"):
            for component in pipeline.get(role) or []:
                if component not in (config.get(role) or {}) and component not in (
                    config.get("connectors") or {}
                ):
                    problems.append(f"pipeline {name} uses undefined {role[:-1]} {component}")
        if not pipeline.get("receivers") or not pipeline.get("exporters"):
            problems.append(f"pipeline {name} needs receivers and exporters")
    return problems


def without_addresses(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with every ``endpoint`` blanked: what two deployments must share when only
    the addresses of the servers around them differ."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: "<address>" if k == "endpoint" else strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    stripped: dict[str, Any] = strip(dict(config))
    return stripped


def kubernetes_collector_config(resources: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The config file the Collector Deployment runs with: its ``--config`` path resolved
    through its volume mounts to a ConfigMap key. None if any link of that chain is missing."""
    deployment = find(resources, "Deployment", COLLECTOR)
    if deployment is None:
        return None
    container = next(containers(deployment))
    paths = [a.split("=", 1)[1] for a in container.get("args") or [] if a.startswith("--config=")]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"].get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        for path in paths:
            directory, _, key = path.rpartition("/")
            source = volumes.get(mount["name"], {}).get("configMap")
            if directory == mount["mountPath"].rstrip("/") and source:
                config_map = find(resources, "ConfigMap", source["name"])
                if config_map and key in (config_map.get("data") or {}):
                    loaded: dict[str, Any] = yaml.safe_load(config_map["data"][key])
                    return loaded
    return None


def collector_deployment_problems(resources: list[dict[str, Any]]) -> Problems:
    """The Collector Deployment's config is mounted and valid, and its Service carries every
    receiver port to a container port of the same number."""
    deployment = find(resources, "Deployment", COLLECTOR)
    if deployment is None:
        return []
    config = kubernetes_collector_config(resources)
    if config is None:
        return [f"{label(deployment)}: --config names no key of a mounted ConfigMap"]
    problems = [f"{COLLECTOR} config: {p}" for p in collector_config_problems(config)]
    container_ports = {
        p["name"]: p["containerPort"] for c in containers(deployment) for p in c.get("ports") or []
    }
    service = find(resources, "Service", COLLECTOR)
    exposed = {
        container_ports.get(p["targetPort"], p["targetPort"])
        for p in (service or {}).get("spec", {}).get("ports") or []
    }
    for protocol, settings in (config["receivers"].get("otlp") or {}).get("protocols", {}).items():
        port = int(settings["endpoint"].rsplit(":", 1)[1])
        if port not in container_ports.values():
            problems.append(f"{label(deployment)}: OTLP {protocol} port {port} is not declared")
        if port not in exposed:
            problems.append(f"Service/{COLLECTOR}: does not expose OTLP {protocol} port {port}")
    return problems
