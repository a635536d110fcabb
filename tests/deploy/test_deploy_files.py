"""Every file under deploy/ is valid for the tool that reads it, and says what the issue asks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.validators import (
    DEPLOY,
    alert_rules,
    check_collector_config,
    check_compose,
    check_dashboard,
    check_dockerfile_lint,
    check_dockerfile_structure,
    check_grafana_provisioning,
    check_kubernetes,
    check_parses,
    check_prometheus_config,
    check_rules,
    datasource_uids,
    duration_seconds,
    load_yaml,
    read_env_file,
    render_compose,
    render_kustomization,
)

COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "celery-kit.json"
PROVISIONING = DEPLOY / "grafana" / "provisioning"
CONFIG_FILES = sorted(
    p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml", ".json")
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return render_compose(COMPOSE, ENV_EXAMPLE)


def _by_kind_and_name(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["kind"], r["metadata"]["name"]): r for r in render_kustomization(directory)}


@pytest.fixture(scope="module")
def k8s() -> dict[tuple[str, str], dict[str, Any]]:
    return _by_kind_and_name(DEPLOY / "k8s")


@pytest.fixture(scope="module")
def k8s_hpa() -> dict[tuple[str, str], dict[str, Any]]:
    """The overlay for clusters without KEDA: the HPA instead of the ScaledObject."""
    return _by_kind_and_name(DEPLOY / "k8s-hpa")


def _container(resource: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = resource["spec"]["template"]["spec"]["containers"][0]
    return container


# -- every file parses and passes its validator ------------------------------------------------


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_and_json_file_parses(path: Path) -> None:
    assert check_parses(path) == []


def test_dockerfile_passes_hadolint() -> None:
    assert check_dockerfile_lint(DEPLOY / "Dockerfile") == []


def test_dockerfile_is_multi_stage_slim_non_root_with_healthcheck_and_worker_default() -> None:
    assert check_dockerfile_structure(DEPLOY / "Dockerfile") == []


def test_compose_file_matches_the_compose_spec_after_interpolation() -> None:
    assert check_compose(COMPOSE, ENV_EXAMPLE) == []


def test_kustomization_renders_to_resources_valid_for_the_kubernetes_api() -> None:
    assert check_kubernetes(DEPLOY / "k8s") == []


def test_alert_rules_pass_the_rule_file_checks_and_parse_as_promql() -> None:
    assert check_rules(RULES) == []


def test_dashboard_is_well_formed_and_every_query_parses() -> None:
    assert check_dashboard(DASHBOARD, datasource_uids(PROVISIONING)) == []


def test_grafana_provisioning_points_at_mounted_dashboards(compose: dict[str, Any]) -> None:
    assert check_grafana_provisioning(PROVISIONING, compose) == []


def test_collector_pipelines_use_only_defined_components() -> None:
    assert check_collector_config(DEPLOY / "otel-collector" / "config.yaml") == []


def test_prometheus_config_loads_the_mounted_rules_and_scrapes_compose_services(
    compose: dict[str, Any],
) -> None:
    assert check_prometheus_config(DEPLOY / "prometheus" / "prometheus.yml", compose) == []


# -- Compose: what the deployment must be ----------------------------------------------------


def test_every_variable_compose_uses_is_in_the_env_example() -> None:
    import re

    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    assert used <= set(read_env_file(ENV_EXAMPLE)) | {"KIT_IMAGE_TAG"}


def test_compose_redis_keeps_an_aof_with_a_password_on_a_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert redis["image"].startswith("redis:7")
    assert "--appendonly yes" in command
    assert "--appendfsync everysec" in command
    assert f"--requirepass {read_env_file(ENV_EXAMPLE)['REDIS_PASSWORD']}" in command
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_compose_runs_three_workers_stopped_after_their_soft_shutdown(
    compose: dict[str, Any],
) -> None:
    worker = compose["services"]["worker"]
    soft = float(worker["environment"]["KIT_SOFT_SHUTDOWN_TIMEOUT"])
    assert int(worker["deploy"]["replicas"]) == 3
    assert worker["stop_signal"] == "SIGQUIT"
    assert duration_seconds(worker["stop_grace_period"]) > soft


def test_compose_runs_exactly_one_beat(compose: dict[str, Any]) -> None:
    beats = [s for s in compose["services"].values() if s.get("command", [None])[0] == "beat"]
    assert len(beats) == 1
    assert int(beats[0]["deploy"]["replicas"]) == 1


def test_compose_flower_requires_a_password(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    user, _, password = flower["environment"]["FLOWER_BASIC_AUTH"].partition(":")
    assert user and password
    assert flower["command"][0] == "flower"


def test_compose_workers_send_telemetry_to_the_collector_which_feeds_jaeger_and_prometheus(
    compose: dict[str, Any],
) -> None:
    collector = load_yaml(DEPLOY / "otel-collector" / "config.yaml")
    worker_env = compose["services"]["worker"]["environment"]
    assert worker_env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"
    assert collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    traces = collector["service"]["pipelines"]["traces"]["exporters"]
    assert [collector["exporters"][e]["endpoint"] for e in traces] == ["jaeger:4317"]
    assert collector["service"]["pipelines"]["metrics"]["exporters"] == ["prometheus"]
    port = collector["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    scraped = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")["scrape_configs"]
    assert f"otel-collector:{port}" in [
        t for j in scraped for s in j["static_configs"] for t in s["targets"]
    ]


def test_collector_keeps_live_series_longer_than_the_export_interval(
    compose: dict[str, Any],
) -> None:
    collector = load_yaml(DEPLOY / "otel-collector" / "config.yaml")
    expiration = duration_seconds(collector["exporters"]["prometheus"]["metric_expiration"])
    interval_ms = int(compose["services"]["worker"]["environment"]["OTEL_METRIC_EXPORT_INTERVAL"])
    assert expiration > interval_ms / 1000


# -- Kubernetes: what the deployment must be -------------------------------------------------


def test_k8s_worker_has_requests_and_limits(k8s: dict[tuple[str, str], Any]) -> None:
    resources = _container(k8s["Deployment", "celery-kit-worker"])["resources"]
    assert set(resources["requests"]) >= {"cpu", "memory"}
    assert set(resources["limits"]) >= {"cpu", "memory"}


def test_k8s_worker_is_ready_only_when_it_answers_a_ping_by_its_own_node_name(
    k8s: dict[tuple[str, str], Any],
) -> None:
    command = _container(k8s["Deployment", "celery-kit-worker"])["readinessProbe"]["exec"]
    script = " ".join(command["command"])
    assert "celery -A project inspect ping" in script
    assert '--destination "celery@$HOSTNAME"' in script


def test_k8s_worker_liveness_does_not_depend_on_redis(k8s: dict[tuple[str, str], Any]) -> None:
    container = _container(k8s["Deployment", "celery-kit-worker"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/metrics"
    config = k8s["ConfigMap", "celery-kit-config"]["data"]
    assert config["OTEL_METRICS_EXPORTER"] == "prometheus"
    port = int(config["OTEL_EXPORTER_PROMETHEUS_PORT"])
    assert [p["containerPort"] for p in container["ports"] if p["name"] == "metrics"] == [port]


def test_k8s_worker_grace_period_exceeds_the_soft_shutdown(
    k8s: dict[tuple[str, str], Any],
) -> None:
    soft = float(k8s["ConfigMap", "celery-kit-config"]["data"]["KIT_SOFT_SHUTDOWN_TIMEOUT"])
    spec = k8s["Deployment", "celery-kit-worker"]["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] > soft


def test_k8s_worker_has_a_disruption_budget(k8s: dict[tuple[str, str], Any]) -> None:
    pdb = k8s["PodDisruptionBudget", "celery-kit-worker"]
    worker_labels = k8s["Deployment", "celery-kit-worker"]["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["selector"]["matchLabels"] == worker_labels


def test_k8s_workers_scale_on_queue_depth(k8s_hpa: dict[tuple[str, str], Any]) -> None:
    hpa = k8s_hpa["HorizontalPodAutoscaler", "celery-kit-worker"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "celery-kit-worker"
    assert [m["external"]["metric"]["name"] for m in hpa["metrics"]] == ["kit_queue_depth"]
    assert hpa["minReplicas"] < hpa["maxReplicas"]


def test_k8s_beat_is_a_single_replica_recreated_on_rollout(
    k8s: dict[tuple[str, str], Any],
) -> None:
    beat = k8s["Deployment", "celery-kit-beat"]["spec"]
    assert beat["replicas"] == 1
    assert beat["strategy"]["type"] == "Recreate"
    assert _container(k8s["Deployment", "celery-kit-beat"])["args"][0] == "beat"


def test_k8s_flower_takes_its_credentials_from_the_secret_behind_a_service(
    k8s: dict[tuple[str, str], Any],
) -> None:
    env = {e["name"]: e for e in _container(k8s["Deployment", "celery-kit-flower"])["env"]}
    ref = env["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == "celery-kit-secrets"
    assert k8s["Service", "celery-kit-flower"]["spec"]["ports"][0]["port"] == 5555


def test_k8s_redis_is_a_stateful_set_with_aof_on_a_volume_claim(
    k8s: dict[tuple[str, str], Any],
) -> None:
    redis = k8s["StatefulSet", "redis"]
    args = " ".join(_container(redis)["args"])
    assert "--appendonly yes" in args and "--appendfsync everysec" in args
    assert "--requirepass $(REDIS_PASSWORD)" in args
    claims = [c["metadata"]["name"] for c in redis["spec"]["volumeClaimTemplates"]]
    assert [m["name"] for m in _container(redis)["volumeMounts"]] == claims


def test_k8s_settings_come_from_a_config_map_and_a_secret(
    k8s: dict[tuple[str, str], Any],
) -> None:
    for name in ("celery-kit-worker", "celery-kit-beat", "celery-kit-flower"):
        container = _container(k8s["Deployment", name])
        assert container["envFrom"] == [{"configMapRef": {"name": "celery-kit-config"}}]
        env = {e["name"]: e for e in container["env"]}
        assert env["REDIS_URL"]["value"].startswith("redis://:$(REDIS_PASSWORD)@redis:6379/")


# -- alerts ------------------------------------------------------------------------------------


def test_alerts_cover_the_seeds_list_with_a_for_duration_each() -> None:
    rules = {r["alert"]: r for r in alert_rules(RULES)}
    assert set(rules) == {
        "CeleryKitQueueBacklog",
        "CeleryKitQueueLatencyHigh",
        "CeleryKitTaskFailureRateHigh",
        "CeleryKitAllWorkersDown",
        "CeleryKitRedisConnectionFailure",
    }
    assert "> 10000" in rules["CeleryKitQueueBacklog"]["expr"]
    assert "> 300" in rules["CeleryKitQueueLatencyHigh"]["expr"]
    assert "> 0.05" in rules["CeleryKitTaskFailureRateHigh"]["expr"]
    assert all(60 <= duration_seconds(r["for"]) <= 900 for r in rules.values())


def test_every_runbook_link_lands_on_a_section_of_the_deploy_readme() -> None:
    import re

    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in (DEPLOY / "README.md").read_text().splitlines()
        if line.startswith("#")
    }
    for rule in alert_rules(RULES):
        page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert page == "deploy/README.md"
        assert anchor in headings, rule["alert"]
