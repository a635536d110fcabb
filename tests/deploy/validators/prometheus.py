"""Prometheus: the alert rules and the server's configuration.

Here, without the server: the rule-file structure ``promtool check rules`` enforces (as a JSON
schema), every expression parsed by ``promql-parser``, what every alert must carry (``for:``,
severity, runbook), and the Compose references of ``prometheus.yml``. With the server (Debian's
``prometheus`` package, see tests/deploy/tools.py): ``promtool test rules`` and a real
Prometheus run on the files that :func:`render_rules` and :func:`render_prometheus_config`
derive from the shipped ones, with only the timings and addresses a test needs changed.
"""

from __future__ import annotations

import copy
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.validators.common import (
    Problems,
    Unreadable,
    duration_seconds,
    format_duration,
    load_yaml,
    read_yaml,
    schema_errors,
)
from tests.deploy.validators.compose import service_mounts
from tests.deploy.validators.promql import parse_promql

RULE_TESTS = Path(__file__).resolve().parents[1] / "rules" / "alerts_test.yml"
_DURATION = r"^([0-9]+(ms|s|m|h|d|w|y))+$"
_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
_LABELS = {
    "type": "object",
    "propertyNames": {"pattern": _NAME},
    "additionalProperties": {"type": "string"},
}
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
                                "labels": _LABELS,
                                "annotations": _LABELS,
                            },
                        },
                    },
                },
            },
        }
    },
}
_CONFIG_KEYS = {
    "global",
    "rule_files",
    "scrape_configs",
    "alerting",
    "remote_write",
    "remote_read",
    "storage",
}


def alert_rules(path: Path) -> list[dict[str, Any]]:
    document = load_yaml(path)
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def check_rules(path: Path) -> Problems:
    try:
        document = read_yaml(path)
    except Unreadable as exc:
        return [str(exc)]
    problems = schema_errors(document, RULES_SCHEMA)
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


def check_prometheus_config(path: Path, compose: Mapping[str, Any]) -> Problems:
    try:
        config = read_yaml(path)
    except Unreadable as exc:
        return [str(exc)]
    problems: Problems = []
    unknown = set(config) - _CONFIG_KEYS
    if unknown:
        problems.append(f"unknown top-level keys {sorted(unknown)}")
    mounts = service_mounts(compose, "prometheus")
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


def render_rules(path: Path, *, time_scale: float, minimum: float = 1.0) -> dict[str, Any]:
    """The shipped rules with every ``for:`` and ``keep_firing_for:`` multiplied by
    ``time_scale`` (at least ``minimum`` seconds), so a test sees an alert go pending, then
    firing, in seconds; expressions, labels and annotations stay as shipped."""
    rules: dict[str, Any] = copy.deepcopy(load_yaml(path))
    for group in rules["groups"]:
        for rule in group["rules"]:
            for key in ("for", "keep_firing_for"):
                if key in rule:
                    scaled = max(minimum, duration_seconds(rule[key]) * time_scale)
                    rule[key] = format_duration(scaled)
    return rules


def render_prometheus_config(
    path: Path,
    *,
    interval: float,
    rule_files: Sequence[Path],
    targets: Mapping[str, Sequence[str]],
    target_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The shipped ``prometheus.yml`` with its scrape and evaluation intervals, rule file
    paths and each job's targets (by job name) replaced; every job must be given targets."""
    config: dict[str, Any] = copy.deepcopy(load_yaml(path))
    config["global"]["scrape_interval"] = format_duration(interval)
    config["global"]["evaluation_interval"] = format_duration(interval)
    config["rule_files"] = [str(p) for p in rule_files]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    if set(jobs) != set(targets):
        raise ValueError(f"targets for {sorted(targets)}, jobs are {sorted(jobs)}")
    for name, job in jobs.items():
        static: dict[str, Any] = {"targets": list(targets[name])}
        if target_labels:
            static["labels"] = dict(target_labels)
        job["static_configs"] = [static]
    return config


def promtool_check_rules(rules: Path) -> Problems:
    """``promtool check rules``: the real parser and type checker of the rule file."""
    from tests.deploy.tools import prometheus_tools

    done = subprocess.run(
        [prometheus_tools().promtool, "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return [] if done.returncode == 0 else [f"promtool check rules: {done.stdout}{done.stderr}"]


def promtool_test_rules(rules: Path, tests: Path = RULE_TESTS) -> Problems:
    """``promtool test rules`` of the unit tests in ``tests``, run against ``rules`` (the
    shipped file, or a broken copy: the tests' ``rule_files`` is pointed at it)."""
    from tests.deploy.tools import prometheus_tools

    document = load_yaml(tests)
    document["rule_files"] = [str(rules.resolve())]
    with tempfile.TemporaryDirectory(prefix="kit-rule-tests-") as directory:
        copy_of_tests = Path(directory) / tests.name
        copy_of_tests.write_text(yaml.safe_dump(document, sort_keys=False))
        done = subprocess.run(
            [prometheus_tools().promtool, "test", "rules", str(copy_of_tests)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    return [] if done.returncode == 0 else [f"promtool test rules: {done.stdout}{done.stderr}"]
