"""The deployments ship the README's defaults (or say why not): issue 18, item 6."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.deploy.validators import DEPLOY, ROOT
from tests.deploy.validators.settings import (
    check_shipped_settings,
    readme_defaults,
    shipped_settings,
)

README = ROOT / "README.md"


def test_every_shipped_kit_setting_is_the_readmes_default_or_a_declared_deviation() -> None:
    assert check_shipped_settings(DEPLOY, README) == []


def test_deployments_keep_the_one_lease_visibility_timeout() -> None:
    assert readme_defaults(README)["KIT_VISIBILITY_TIMEOUT"] == "60"
    shipped = [(w, v) for w, n, v in shipped_settings(DEPLOY) if n == "KIT_VISIBILITY_TIMEOUT"]
    places = {w.split()[0] for w, _ in shipped}
    assert {".env.example", "compose.yaml", "k8s", "k8s-hpa"} <= places, shipped
    assert {v for _, v in shipped} == {"60"}


def test_a_deployment_that_undoes_a_default_is_reported(tmp_path: Path) -> None:
    copy = shutil.copytree(DEPLOY, tmp_path / "deploy")
    configmap = copy / "k8s" / "configmap.yaml"
    shipped, undone = 'KIT_VISIBILITY_TIMEOUT: "60"', 'KIT_VISIBILITY_TIMEOUT: "3600"'
    text = configmap.read_text()
    assert shipped in text
    configmap.write_text(text.replace(shipped, undone))
    problems = check_shipped_settings(copy, README)
    assert any("KIT_VISIBILITY_TIMEOUT='3600'" in p and "k8s ConfigMap" in p for p in problems)
