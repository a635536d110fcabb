"""Engine-free validators for everything under deploy/, each returning the problems it finds.

Every check takes a path (or rendered resources), so the tests run it on the shipped file and
on a deliberately broken copy (proof that the check can fail). One module per thing validated;
the tools come from PyPI through the ``test`` extra, the KEDA CRD from tests/deploy/schemas:

* ``common``: paths, YAML/JSON reading, JSON-schema errors, durations;
* ``dockerfile``: hadolint and the image's structure;
* ``compose``: the compose-spec schema after ``${VAR}`` interpolation, and references;
* ``kustomize``: the kustomizations rendered as ``kustomize build`` would;
* ``k8s``: every resource against the API's (or its CRD's) schema, strict, and references;
* ``network_policies``: the NetworkPolicies evaluated against who may reach whom;
* ``autoscaling``: KEDA's trigger, prometheus-adapter's rule, one autoscaler per Deployment;
* ``collector``: the Collector's pipelines, and its Kubernetes Deployment and Service;
* ``promql``: expressions parsed, metric and label names;
* ``prometheus``: alert rules, the server's config, and their test renderings;
* ``grafana``: provisioning and the dashboard.
"""

from __future__ import annotations

from tests.deploy.validators.collector import check_collector_config
from tests.deploy.validators.common import (
    DEPLOY,
    ROOT,
    Problems,
    check_parses,
    duration_seconds,
    load_yaml,
    load_yaml_documents,
)
from tests.deploy.validators.compose import check_compose, read_env_file, render_compose
from tests.deploy.validators.dockerfile import check_dockerfile_lint, check_dockerfile_structure
from tests.deploy.validators.grafana import (
    check_dashboard,
    check_grafana_provisioning,
    dashboard_queries,
    datasource_uids,
)
from tests.deploy.validators.k8s import K8S_VERSION, check_kubernetes
from tests.deploy.validators.kustomize import render_kustomization
from tests.deploy.validators.prometheus import alert_rules, check_prometheus_config, check_rules
from tests.deploy.validators.promql import label_names, metric_names, parse_promql

__all__ = [
    "DEPLOY",
    "K8S_VERSION",
    "ROOT",
    "Problems",
    "alert_rules",
    "check_collector_config",
    "check_compose",
    "check_dashboard",
    "check_dockerfile_lint",
    "check_dockerfile_structure",
    "check_grafana_provisioning",
    "check_kubernetes",
    "check_parses",
    "check_prometheus_config",
    "check_rules",
    "dashboard_queries",
    "datasource_uids",
    "duration_seconds",
    "label_names",
    "load_yaml",
    "load_yaml_documents",
    "metric_names",
    "parse_promql",
    "read_env_file",
    "render_compose",
    "render_kustomization",
]
