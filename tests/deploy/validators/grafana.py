"""Grafana: the provisioned data sources and dashboard providers, and the dashboard itself
(layout, data source references, and every query as Prometheus will receive it, parsed)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.deploy.validators.common import Problems, load_yaml
from tests.deploy.validators.compose import service_mounts
from tests.deploy.validators.promql import parse_promql

# Grafana's built-in and the dashboard's own variables, replaced as Grafana would before the
# query reaches Prometheus.
_GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
}


def grafana_expr(expr: str, variables: Mapping[str, str]) -> str:
    for name, value in {**_GRAFANA_VARIABLES, **variables}.items():
        expr = expr.replace(name, value)
    return re.sub(r"\$\{?(\w+)\}?", ".*", expr)  # any dashboard variable left: match all


def dashboard_queries(path: Path) -> list[tuple[str, str]]:
    """(panel title, expression as Prometheus receives it) for every query of a dashboard."""
    dashboard = json.loads(path.read_text())
    queries: list[tuple[str, str]] = []
    for panel in _panels(dashboard):
        for target in panel.get("targets") or []:
            if "expr" in target:
                queries.append((panel.get("title", ""), grafana_expr(target["expr"], {})))
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        match = re.fullmatch(r"label_values\((?:(.+),\s*)?(\w+)\)", text.strip())
        if match and match.group(1):
            queries.append((f"${variable['name']}", match.group(1)))
    return queries


def _panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []  # collapsed rows


def check_dashboard(path: Path, datasource_uids: set[str]) -> Problems:
    try:
        dashboard = json.loads(path.read_text())
    except ValueError as exc:
        return [f"{path.name}: {exc}"]
    problems: Problems = []
    for key in ("uid", "title", "panels", "schemaVersion"):
        if key not in dashboard:
            problems.append(f"dashboard has no {key}")
    ids = [p.get("id") for p in _panels(dashboard)]
    if len(ids) != len(set(ids)) or None in ids:
        problems.append(f"panel ids are missing or repeated: {ids}")
    for panel in _panels(dashboard):
        title = panel.get("title", "?")
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")):
            problems.append(f"panel {title}: gridPos needs integer h, w, x, y")
        elif grid["x"] + grid["w"] > 24:
            problems.append(f"panel {title}: wider than the 24-column grid")
        if panel.get("type") == "row":
            continue
        if not panel.get("targets"):
            problems.append(f"panel {title}: no queries")
        for target in panel.get("targets") or []:
            uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
            if uid not in datasource_uids:
                problems.append(f"panel {title}: unknown datasource uid {uid!r}")
    for title, expr in dashboard_queries(path) if not problems else []:
        try:
            parse_promql(expr)
        except ValueError as exc:
            problems.append(f"panel {title}: query does not parse: {exc} in {expr}")
    return problems


def datasource_uids(provisioning: Path) -> set[str]:
    uids: set[str] = set()
    for file in sorted((provisioning / "datasources").glob("*.y*ml")):
        uids.update(d["uid"] for d in load_yaml(file).get("datasources") or [] if "uid" in d)
    return uids


def check_grafana_provisioning(provisioning: Path, compose: Mapping[str, Any]) -> Problems:
    problems: Problems = []
    mounts = service_mounts(compose, "grafana")
    for file in sorted((provisioning / "datasources").glob("*.y*ml")):
        document = load_yaml(file)
        if document.get("apiVersion") != 1:
            problems.append(f"{file.name}: apiVersion must be 1")
        for source in document.get("datasources") or []:
            for key in ("name", "type", "uid", "url"):
                if key not in source:
                    problems.append(f"{file.name}: datasource without {key}")
    for file in sorted((provisioning / "dashboards").glob("*.y*ml")):
        document = load_yaml(file)
        if document.get("apiVersion") != 1:
            problems.append(f"{file.name}: apiVersion must be 1")
        for provider in document.get("providers") or []:
            folder = provider.get("options", {}).get("path")
            if folder not in mounts:
                problems.append(f"{file.name}: dashboards path {folder} is not mounted")
            elif not any((provisioning.parent.parent / mounts[folder]).glob("*.json")):
                problems.append(f"{file.name}: no dashboard JSON at {mounts[folder]}")
    return problems
