"""The alert rules, run by Prometheus's own tool: ``promtool check rules`` parses and
type-checks them, and ``promtool test rules`` feeds each alert series that must fire it and
series that must not (tests/deploy/rules/alerts_test.yml), annotations included."""

from __future__ import annotations

from tests.deploy.validators import DEPLOY, alert_rules, load_yaml
from tests.deploy.validators.prometheus import (
    RULE_TESTS,
    promtool_check_rules,
    promtool_test_rules,
)

RULES = DEPLOY / "prometheus" / "alerts.yml"


def test_promtool_accepts_the_rule_file() -> None:
    assert promtool_check_rules(RULES) == []


def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    assert promtool_test_rules(RULES) == []


def test_the_unit_tests_load_the_shipped_rule_file() -> None:
    rule_files = load_yaml(RULE_TESTS)["rule_files"]
    assert [(RULE_TESTS.parent / f).resolve() for f in rule_files] == [RULES.resolve()]


def test_every_alert_has_series_that_fire_it_and_series_that_must_not() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(RULE_TESTS)["tests"]:
        for check in case.get("alert_rule_test") or []:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in alert_rules(RULES)}
    assert fires == alerts, f"no series fire {sorted(alerts - fires)}"
    assert quiet == alerts, f"no series must not fire {sorted(alerts - quiet)}"
